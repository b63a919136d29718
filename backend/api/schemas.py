"""Request and response shapes: the same models validate input and generate the OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
)

from backend.api.emails import email_address
from backend.clock import isoformat_z

MAX_ID = 2**31 - 1
CODE_PATTERN = r"^s\d{2}-\d{3}-\d{3}$"
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
CURSOR_PATTERN = r"^\d{1,18}$"


# Control characters are refused (PostgreSQL cannot even store NUL); free text may hold tabs
# and line breaks, single-line values may not. Patterns, not validators, so the OpenAPI states them.
_CTRL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
TEXT_PATTERN = rf"^[^{_CTRL}]*$"
LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
NONBLANK_LINE_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
NONBLANK_TEXT_PATTERN = rf"^[^{_CTRL}]*[^\s{_CTRL}][^{_CTRL}]*$"


def _strip(value: str) -> str:
    return value.strip()


def _blank_to_none(value: str | None) -> str | None:
    return (value or "").strip() or None


Line = Annotated[str, StringConstraints(pattern=LINE_PATTERN)]
Text = Annotated[str, StringConstraints(pattern=TEXT_PATTERN)]
Name = Annotated[
    str, StringConstraints(pattern=NONBLANK_LINE_PATTERN, max_length=100), AfterValidator(_strip)
]
OptionalName = Annotated[
    Annotated[str, StringConstraints(pattern=LINE_PATTERN, max_length=100)] | None,
    AfterValidator(_blank_to_none),
]
LongText = Annotated[str, StringConstraints(pattern=TEXT_PATTERN, max_length=4000)]
OptionalLongText = Annotated[LongText | None, AfterValidator(_blank_to_none)]
Email = Annotated[
    str,
    AfterValidator(email_address),
    StringConstraints(max_length=254),
    Field(json_schema_extra={"format": "email"}),
]
Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
Password = Annotated[str, StringConstraints(pattern=LINE_PATTERN, min_length=8, max_length=1000)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Timestamp = Annotated[datetime, PlainSerializer(isoformat_z, return_type=str)]
CustomerField = Literal["name", "email", "description"]


class Body(BaseModel):
    """Base of request bodies: strict types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Base of query strings: values arrive as text, unknown parameters refused."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ---- shared parts -------------------------------------------------------------------------


class CustomerIn(Body):
    name: OptionalName = None
    email: Email | None = None


class DeviceIn(Body):
    hostname: Annotated[Line, StringConstraints(max_length=255)] | None = None
    os: Annotated[Line, StringConstraints(max_length=255)] | None = None
    agent_version: Annotated[Line, StringConstraints(max_length=64)] | None = None
    device_id: Annotated[Line, StringConstraints(max_length=100)] | None = None


class Ref(Out):
    id: int
    name: str


class UserRef(Out):
    id: int
    username: str
    display_name: str


class CustomerOut(Out):
    name: str | None
    email: str | None


class DeviceOut(Out):
    hostname: str | None
    os: str | None
    agent_version: str | None
    device_id: str | None


class ErrorDetail(Out):
    field: str
    message: str


class ErrorBody(Out):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class Error(Out):
    error: ErrorBody


# ---- cases -----------------------------------------------------------------------------------

Status = Literal["new", "pending", "in_progress", "closed", "expired"]
Source = Literal["manual", "first_launch", "sos_button", "api"]


class CaseOut(Out):
    code: str
    status: Status
    source: Source
    topic: str | None
    group: Ref
    assignee: UserRef | None
    deployment: Ref | None
    customer: CustomerOut
    description: str | None
    device: DeviceOut
    expert_connected: bool
    customer_connected: bool
    connected_expert: UserRef | None
    closed_by: Literal["expert", "customer"] | None
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp
    closed_at: Timestamp | None


class ExpertName(Out):
    display_name: str


class CustomerCaseOut(Out):
    code: str
    status: Status
    source: Source
    customer: CustomerOut
    description: str | None
    expert: ExpertName | None
    expert_connected: bool
    customer_connected: bool
    created_at: Timestamp
    expires_at: Timestamp
    closed_at: Timestamp | None


class CaseList(Out):
    cases: list[CaseOut]
    next_cursor: str | None
    counts: Annotated[
        dict[Literal["new", "pending", "in_progress"], int],
        Field(description="live cases per status, over the same filters except status"),
    ]


def _split_statuses(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class CaseListQuery(Query):
    status: Annotated[list[Status], Field(description="comma-separated statuses")] | None = None
    group: Id | None = None
    assignee: Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)] | None = Field(
        None, description="me, none, or a username"
    )
    q: Annotated[Line, StringConstraints(max_length=200)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    cursor: Annotated[str, StringConstraints(pattern=CURSOR_PATTERN)] | None = None

    _split = field_validator("status", mode="before")(_split_statuses)


class CaseCreate(Body):
    group_id: Id
    customer: CustomerIn | None = None
    description: OptionalLongText = None


class CasePatch(Body):
    customer: CustomerIn | None = None
    description: OptionalLongText = None
    group_id: Id | None = None


class AssignBody(Body):
    assignee: Username | None = Field(description="me, a username, or null to unassign")
    if_unassigned: bool = False


class AgentCaseCreate(Body):
    source: Literal["first_launch", "sos_button", "api"] = "api"
    topic: Name | None = None
    customer: CustomerIn | None = None
    description: OptionalLongText = None
    device: DeviceIn | None = None


class AgentJoin(Body):
    code: Annotated[str, StringConstraints(pattern=CODE_PATTERN)]
    customer: CustomerIn | None = None
    device: DeviceIn | None = None


class AgentCaseOut(Out):
    case: CustomerCaseOut
    case_token: str


class AgentConfigOut(Out):
    deployment: Ref
    group: Annotated[dict[Literal["name"], str], Field(description="the target group's name")]
    customer_fields: list[CustomerField]
    topics: list[str]


# ---- messages and events ---------------------------------------------------------------------


class Author(Out):
    kind: Literal["expert", "customer"]
    name: str


class MessageOut(Out):
    id: int
    author: Author
    body: str
    created_at: Timestamp


class MessageList(Out):
    messages: list[MessageOut]


class MessageCreate(Body):
    body: Annotated[
        str,
        StringConstraints(pattern=NONBLANK_TEXT_PATTERN, max_length=4000),
        AfterValidator(_strip),
    ]


class MessageQuery(Query):
    after: Annotated[int, Field(ge=0)] = 0


class EventActor(Out):
    kind: Literal["user", "customer", "deployment", "system"]
    id: int | None = None
    name: str


class EventOut(Out):
    id: int
    cursor: str
    type: str
    case_code: str
    status: Status
    actor: EventActor
    data: dict[str, Any]
    created_at: Timestamp


class EventList(Out):
    events: list[EventOut]


class Feed(Out):
    events: list[EventOut]
    cursor: str


class FeedQuery(Query):
    after: Annotated[str, StringConstraints(pattern=CURSOR_PATTERN)] | None = None
    wait: Annotated[float, Field(ge=0, le=25)] = 0
    limit: Annotated[int, Field(ge=1, le=500)] = 100


# ---- routing ------------------------------------------------------------------------------

Policy = Literal["none", "default_user", "round_robin", "least_active"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


def _known_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone; use an IANA name such as Europe/Paris") from None
    return value


class Schedule(Body):
    """Weekly working hours; a shift whose end is before its start runs past midnight."""

    timezone: Annotated[
        str,
        StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$"),
        AfterValidator(_known_timezone),
    ] = "UTC"
    days: Annotated[list[Day], Field(min_length=1, max_length=7)] = [
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
    ]
    start: ClockTime = "08:00"
    end: ClockTime = "18:00"


class ScheduleOut(Out):
    timezone: str
    days: list[Day]
    start: str
    end: str


class RoutingIn(Body):
    policy: Policy = "none"
    default_user_id: Id | None = None
    only_available: bool = False
    available_within_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    use_schedules: bool = False
    max_open_cases: Annotated[int, Field(ge=1, le=10000)] | None = None
    escalate_after_minutes: Annotated[int, Field(ge=1, le=10080)] | None = None


class RoutingOut(Out):
    policy: Policy
    default_user_id: int | None
    only_available: bool
    available_within_minutes: int
    use_schedules: bool
    max_open_cases: int | None
    escalate_after_minutes: int | None


class TopicIn(Body):
    name: Name
    group_id: Id


class TopicOut(Out):
    name: str
    group_id: int


class NotificationsIn(Body):
    webhook_url: (
        Annotated[str, StringConstraints(pattern=r"^https?://[^\s\x00-\x1f]+$", max_length=2000)]
        | None
    ) = None
    email: bool = False


class NotificationsOut(Out):
    webhook_url: str | None
    webhook_secret_set: bool
    email: bool


class WebhookSecret(Out):
    secret: str


# ---- accounts and administration -------------------------------------------------------------


class TokenLogin(Body):
    username: Username
    password: Annotated[Line, StringConstraints(min_length=1, max_length=1000)]
    name: Name = "sos-queue"


class TokenCreate(Body):
    name: Name


class TokenOut(Out):
    id: int
    name: str
    hint: str
    created_at: Timestamp
    last_used_at: Timestamp | None


class TokenCreated(TokenOut):
    token: str


class TokenList(Out):
    tokens: list[TokenOut]


class UserOut(Out):
    id: int
    username: str
    display_name: str
    email: str | None
    role: Literal["admin", "supporter"]
    active: bool
    availability: Literal["online", "away", "offline"]
    groups: list[Ref]
    last_seen_at: Timestamp | None
    schedule: ScheduleOut | None
    notifications: NotificationsOut


class UserList(Out):
    users: list[UserOut]


class UserCreate(Body):
    username: Username
    password: Password
    role: Literal["admin", "supporter"] = "supporter"
    display_name: Name | None = None
    email: Email | None = None
    group_ids: list[Id] = []


class UserPatch(Body):
    display_name: Name | None = None
    email: Email | None = None
    role: Literal["admin", "supporter"] | None = None
    active: bool | None = None
    password: Password | None = None
    schedule: Schedule | None = Field(None, description="null removes the schedule")


class MePatch(Body):
    display_name: Name | None = None
    availability: Literal["online", "away"] | None = None
    password: Password | None = None
    schedule: Schedule | None = Field(None, description="null removes the schedule")
    notifications: NotificationsIn | None = None


class GroupOut(Out):
    id: int
    name: str
    description: str | None
    routing: RoutingOut


class GroupList(Out):
    groups: list[GroupOut]


class GroupCreate(Body):
    name: Name
    description: Annotated[Text, StringConstraints(max_length=1000)] | None = None
    routing: RoutingIn | None = None


class GroupPatch(Body):
    name: Name | None = None
    description: Annotated[Text, StringConstraints(max_length=1000)] | None = None
    routing: RoutingIn | None = None


class DeploymentOut(Out):
    id: int
    name: str
    group: Ref
    default_assignee: UserRef | None
    customer_fields: list[CustomerField]
    policy: Policy | None
    topics: list[TopicOut]
    key_hint: str
    active: bool
    created_at: Timestamp


class DeploymentList(Out):
    deployments: list[DeploymentOut]


class DeploymentCreated(Out):
    deployment: DeploymentOut
    key: str


class DeploymentCreate(Body):
    name: Name
    group_id: Id
    default_assignee_id: Id | None = None
    customer_fields: Annotated[list[CustomerField], Field(max_length=3)] = [
        "name",
        "email",
        "description",
    ]
    policy: Policy | None = None
    topics: Annotated[list[TopicIn], Field(max_length=20)] = []


class DeploymentPatch(Body):
    name: Name | None = None
    group_id: Id | None = None
    default_assignee_id: Id | None = None
    customer_fields: Annotated[list[CustomerField], Field(max_length=3)] | None = None
    active: bool | None = None
    policy: Policy | None = None
    topics: Annotated[list[TopicIn], Field(max_length=20)] | None = None


class Health(Out):
    status: Literal["ok"]
    database: Literal["ok"]


class Empty(Query):
    pass
