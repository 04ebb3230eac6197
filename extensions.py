"""Flask extensions, created without an app and attached in `create_app()`."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator


class Base(DeclarativeBase):
    pass


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Migrations name plain SQL types, never app classes they would have to import."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        impl = obj.impl
        tz = "timezone=True" if getattr(impl, "timezone", False) else ""
        return f"sa.{type(impl).__name__}({tz})"
    return False


db = SQLAlchemy(model_class=Base)
# Batch mode lets Alembic alter tables on SQLite (copy-and-move) as well as on PostgreSQL.
migrate = Migrate(render_as_batch=True, compare_type=True, render_item=_render_item)
login_manager = LoginManager()
csrf = CSRFProtect()
# Storage, strategy and headers come from RATELIMIT_* config (Redis when REDIS_URL is set).
limiter = Limiter(key_func=get_remote_address)
