"""The endpoints. Each gets its own AsyncSession from the app's
async_sessionmaker and commits, as in production."""

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .db import get_session
from .models import Customer, Order, Product

app = FastAPI()
#: what an endpoint takes to get its own session
Session = Annotated[AsyncSession, Depends(get_session)]


class CustomerIn(BaseModel):
    email: str


class ProductIn(BaseModel):
    name: str
    price_cents: int
    stock: int


class OrderIn(BaseModel):
    customer_id: int
    product_id: int
    quantity: int


@app.post("/customers", status_code=201)
async def add_customer(body: CustomerIn, session: Session) -> dict[str, int]:
    customer = Customer(email=body.email)
    session.add(customer)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise HTTPException(409, f"{body.email} is taken") from None
    return {"id": customer.id}


@app.post("/products", status_code=201)
async def add_product(body: ProductIn, session: Session) -> dict[str, int]:
    product = Product(**body.model_dump())
    session.add(product)
    await session.commit()
    return {"id": product.id}


@app.post("/orders", status_code=201)
async def place_order(body: OrderIn, session: Session) -> dict[str, int]:
    # Take the stock and record the order in one transaction: both or neither.
    taken = await session.execute(update(Product).where(Product.id == body.product_id,
                                                        Product.stock >= body.quantity)
                                  .values(stock=Product.stock - body.quantity))
    if taken.rowcount != 1:
        await session.rollback()
        raise HTTPException(409, "not enough stock")
    order = Order(**body.model_dump())
    session.add(order)
    await session.commit()
    return {"id": order.id}


@app.get("/customers/{customer_id}/orders")
async def orders_of(customer_id: int, session: Session) -> list[dict[str, object]]:
    rows = await session.execute(select(Order.id, Product.name, Order.quantity).join(Product)
                                 .where(Order.customer_id == customer_id).order_by(Order.id))
    return [{"id": id_, "product": name, "quantity": quantity} for id_, name, quantity in rows]
