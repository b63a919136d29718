"""Persistent model: users, groups, deployments, cases, messages and the event log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, hands back aware UTC datetimes on every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Membership(Base):
    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))  # admin | supporter
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    away: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Working hours used by routing's schedule filter: {"timezone", "days", "start", "end"}.
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    notify_webhook_url: Mapped[str | None] = mapped_column(String(2000))
    # Signs webhook bodies (HMAC); kept retrievable because signing needs it.
    notify_webhook_secret: Mapped[str | None] = mapped_column(String(100))
    notify_email: Mapped[bool] = mapped_column(Boolean, default=False)

    groups: Mapped[list[Group]] = relationship(
        secondary="memberships", order_by="Group.name", lazy="selectin"
    )

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Routing settings (policy, filters, escalation); see services/routing.py.
    routing: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Round-robin position: the last user chosen, kept in the database, not in memory.
    rr_last_user_id: Mapped[int | None] = mapped_column(Integer)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), index=True)
    default_assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    customer_fields: Mapped[list[str]] = mapped_column(JSON)
    # Overrides the group's routing policy when set.
    policy: Mapped[str | None] = mapped_column(String(16))
    # Topics the customer may choose from, each routed to a group: [{"name", "group_id"}].
    topics: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_hint: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    group: Mapped[Group] = relationship(lazy="joined")
    default_assignee: Mapped[User | None] = relationship(lazy="joined")


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("deployment_id", "idempotency_key", name="uq_cases_idempotency"),
        Index("ix_cases_group_id_id", "group_id", "id"),
        Index("ix_cases_assignee_id_id", "assignee_id", "id"),
        Index("ix_cases_device_id", "device_id"),
        # Open cases only: what the queue's counts read, however long the history grows.
        Index(
            "ix_cases_open_expires_at",
            "expires_at",
            postgresql_where=text("closed_at IS NULL AND deleted_at IS NULL"),
            sqlite_where=text("closed_at IS NULL AND deleted_at IS NULL"),
        ),
        # A supporter's counts and status pages: their groups' open cases only.
        Index(
            "ix_cases_open_group_id_expires_at",
            "group_id",
            "expires_at",
            postgresql_where=text("closed_at IS NULL AND deleted_at IS NULL"),
            sqlite_where=text("closed_at IS NULL AND deleted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(11), unique=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    deployment_id: Mapped[int | None] = mapped_column(
        ForeignKey("deployments.id", ondelete="SET NULL")
    )
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # When the current assignee got the case, and whether they have connected since:
    # escalation acts on assignees who have not connected in time.
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assignee_connected: Mapped[bool] = mapped_column(Boolean, default=False)
    topic: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(16))
    customer_name: Mapped[str | None] = mapped_column(String(100))
    customer_email: Mapped[str | None] = mapped_column(String(254))
    description: Mapped[str | None] = mapped_column(Text)
    device_hostname: Mapped[str | None] = mapped_column(String(255))
    device_os: Mapped[str | None] = mapped_column(String(255))
    device_agent_version: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(100))
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    customer_joined: Mapped[bool] = mapped_column(Boolean, default=False)
    # The Idempotency-Key of the join that succeeded: a retry of that join gets the case again.
    join_key: Mapped[str | None] = mapped_column(String(100))
    # Presence: a side is connected while its last connect/heartbeat is recent enough.
    expert_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expert_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    customer_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(16))
    expiry_recorded: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    group: Mapped[Group] = relationship(lazy="joined")
    deployment: Mapped[Deployment | None] = relationship(lazy="joined")
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id], lazy="joined")
    expert: Mapped[User | None] = relationship(foreign_keys=[expert_id], lazy="joined")


class CaseToken(Base):
    __tablename__ = "case_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_case_id_id", "case_id", "id"),
        UniqueConstraint("case_id", "idempotency_key", name="uq_messages_idempotency"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    author_kind: Mapped[str] = mapped_column(String(16))  # expert | customer
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_name: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A retried post with the same key finds this message instead of adding a second one.
    idempotency_key: Mapped[str | None] = mapped_column(String(100))


class Event(Base):
    """One change to a case: history, audit trail and change feed in one ordered log."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_case_id_id", "case_id", "id"),
        Index("ix_events_group_id_id", "group_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    case_code: Mapped[str] = mapped_column(String(11))
    group_id: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Notification(Base):
    """A message to one user about one case, delivered in the background with retries."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))  # webhook | email
    case_code: Mapped[str] = mapped_column(String(11))
    reason: Mapped[str] = mapped_column(String(32))  # assigned | unassigned_in_group
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
