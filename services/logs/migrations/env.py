from alembic import context

from services.common.alembic_env import noop, run
from services.logs.models import Base

if context.is_offline_mode():
    noop()
else:
    run(Base.metadata)
