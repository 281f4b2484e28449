"""pytest fixtures for callcontrol's own tests and for users testing their dialplans/prompts.

Each capability adds its fixtures here by importing them from its own module.
"""

from callcontrol.testing.database_fixtures import (  # noqa: F401
    database_url,
    db,
    db_url,
    fusionpbx_schema,
)
from callcontrol.testing.freeswitch.fixtures import freeswitch_sim  # noqa: F401
