"""The shop of the parent scenario (its models), as an async app: AsyncEngines
and one async_sessionmaker bound to both databases."""

import os

from shop import AnalyticsAudit, AnalyticsBase, Audit, Base, Event, Order
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

# Never used as such in the tests: the run redirects both into its transactions.
engine = create_async_engine(os.environ.get("SHOP_DSN", "postgresql+asyncpg://shop@shop.invalid/shop"))
analytics_engine = create_async_engine(os.environ.get("ANALYTICS_DSN", "postgresql+asyncpg://shop@analytics.invalid/a"))
Session = async_sessionmaker(binds={Base: engine, AnalyticsBase: analytics_engine})


async def place_order(customer_id, item):
    async with Session() as session:
        session.add(Order(customer_id=customer_id, item=item))
        session.add(Audit(who=f"customer {customer_id}"))
        session.add(Event(kind=f"order {item}"))
        session.add(AnalyticsAudit(what=f"order {item}"))
        await session.commit()


async def counts():
    async with Session() as session:
        return tuple([await session.scalar(select(func.count()).select_from(model))
                      for model in (Order, Audit, Event, AnalyticsAudit)])
