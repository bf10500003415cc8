"""Shopper and admin accounts."""

from __future__ import annotations

import enum

from sqlalchemy import Boolean, Enum, Integer, String, Text
from sqlalchemy.orm import Mapped, deferred, mapped_column

from sweetdream.db import UUIDAuditBase


class Role(enum.StrEnum):
    CUSTOMER = "CUSTOMER"
    ADMIN = "ADMIN"


class User(UUIDAuditBase):
    __tablename__ = "users"

    # Stored normalised (trimmed, lowercased), so the unique constraint ignores case and spaces.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    # Deferred: only sign-in and password change load it, so it never rides along elsewhere.
    password_hash: Mapped[str] = deferred(mapped_column(String(255)))
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str] = mapped_column(String(32), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="user_role", native_enum=False, length=16), default=Role.CUSTOMER
    )
    # Every session remembers the epoch it was signed in at; raising it (a password change) ends
    # every session signed in before, on its next request.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A deactivated account cannot sign in, and its sessions ended when it was deactivated (an admin
    # does it with a reason, in the audit log; reactivating lets the person sign in again).
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    # The language the shopper chose ("vi", "en"), or None: pages and emails follow it (platform/i18n.py).
    language: Mapped[str | None] = mapped_column(String(8), nullable=True, default=None)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN
