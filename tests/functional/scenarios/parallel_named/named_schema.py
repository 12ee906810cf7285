from sqlalchemy import Column, Integer, MetaData, Table

metadata = MetaData()
Table("ledger", metadata, Column("id", Integer, primary_key=True), schema="billing")
