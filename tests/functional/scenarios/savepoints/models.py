from savepoint_ops import rows_table
from sqlalchemy import MetaData

metadata = MetaData()
rows = rows_table("sqltx_savepoint_rows", metadata)
