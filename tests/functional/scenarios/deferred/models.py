from deferred_ops import tables
from sqlalchemy import MetaData

metadata = MetaData()
parent, child = tables("sqltx_deferred", metadata)
