"""The transfer directory: destinations per domain and secretary, what the caller meant, working
hours, and Do Not Disturb."""

from callcontrol.destinations.availability import check_availability
from callcontrol.destinations.directory import DEFAULT_TTL_SECONDS, Directory, availability
from callcontrol.destinations.dnd import is_do_not_disturb
from callcontrol.destinations.hours import Availability, InvalidWorkingHours, WorkingHours
from callcontrol.destinations.matching import (
    Ambiguous,
    Matched,
    MatchKind,
    MatchResult,
    NoMatch,
    match,
    normalize,
)
from callcontrol.destinations.model import (
    Destination,
    DestinationType,
    FallbackAction,
    InvalidDestination,
    destination_from_row,
)

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "Ambiguous",
    "Availability",
    "Destination",
    "DestinationType",
    "Directory",
    "FallbackAction",
    "InvalidDestination",
    "InvalidWorkingHours",
    "MatchKind",
    "MatchResult",
    "Matched",
    "NoMatch",
    "WorkingHours",
    "availability",
    "check_availability",
    "destination_from_row",
    "is_do_not_disturb",
    "match",
    "normalize",
]
