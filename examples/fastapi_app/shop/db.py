"""The app's database objects, as a FastAPI app has them: a module-level
AsyncEngine, an async_sessionmaker, and a dependency that yields a session.

The URL is production's; under the tests nose2-sqltx points the engine at the
test transaction, so it is never connected to."""

import os
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

engine = create_async_engine(os.environ.get("SHOP_DATABASE_URL", "postgresql+asyncpg://shop@db.shop.internal/shop"))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session
