"""Two tables whose foreign keys point at each other, and a fixture that warns."""

import warnings

from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table

metadata = MetaData()
a = Table("sqltx_cycle_a", metadata, Column("id", Integer, primary_key=True),
          Column("b_id", Integer, ForeignKey("sqltx_cycle_b.id")))
b = Table("sqltx_cycle_b", metadata, Column("id", Integer, primary_key=True),
          Column("a_id", Integer, ForeignKey("sqltx_cycle_a.id")))


def warn(connection):
    warnings.warn("the fixture's own warning", UserWarning, stacklevel=1)
