"""``EDAIsolation``: the settings of isolation between kernels (docs/isolation.md).

They used to live on ``EDASandbox``; those names still work: each one set there
(and not here) is copied here, with a deprecation warning naming the new name.
Where both are set, ``EDAIsolation`` wins.
"""

from __future__ import annotations

from traitlets import Bool, Dict, Int, List, TraitError, Tuple, Unicode, Union, validate
from traitlets.config import LoggingConfigurable

OLD_SECTION = "EDASandbox"
MOVED = ("isolation", "allow_network", "user_uids", "uid_range")


class EDAIsolation(LoggingConfigurable):
    """Confinement between kernels: which layers, network, and the uids kernels run as."""

    isolation = Union(
        [Unicode(), List(Unicode())],
        default_value="auto",
        config=True,
        help="Confinement layers around each kernel: 'auto' (all this host offers), 'none', "
        "or some of 'landlock', 'bwrap', 'uid' ('landlock,uid' or a list). An explicit choice "
        "this host cannot honour stops start-up.",
    )
    allow_network = Bool(
        False, config=True, help="Let kernels open network connections (never to other kernels' ports)."
    )
    user_uids = Dict(
        key_trait=Unicode(), value_trait=Int(), config=True,
        help="uid layer: fixed OS uids per user, e.g. {'alice': 1001}; others get one from uid_range.",
    )
    uid_range = Tuple(
        Int(), Int(), default_value=(300000, 399999), config=True,
        help="uid layer: (first, last) uid handed to users not listed in user_uids.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._take_deprecated()

    def _take_deprecated(self) -> None:
        """``EDASandbox.<name>`` (the old home of these settings): copied here unless set here."""
        old = self.config[OLD_SECTION] if OLD_SECTION in self.config else {}
        new = self.config[type(self).__name__] if type(self).__name__ in self.config else {}
        for name in MOVED:
            if name not in old:
                continue
            if name in new:
                self.log.warning("eda_gateway: %s.%s is deprecated and ignored: %s.%s is set too",
                                 OLD_SECTION, name, type(self).__name__, name)
                continue
            self.log.warning("eda_gateway: %s.%s is deprecated: use %s.%s", OLD_SECTION, name,
                             type(self).__name__, name)
            setattr(self, name, old[name])

    @validate("isolation")
    def _known_layers(self, proposal):
        from .layers import parse_choice  # raises TraitError naming the setting

        parse_choice(proposal["value"])
        return proposal["value"]

    @validate("uid_range")
    def _sane_uid_range(self, proposal):
        return check_uid_range(proposal)


def check_uid_range(proposal):
    low, high = proposal["value"]
    if not 1000 <= low <= high < 2**31 - 1:
        owner = type(proposal["owner"]).__name__
        raise TraitError(f"{owner}.uid_range must be (first, last) with 1000 <= first <= last, "
                         f"got {proposal['value']!r}")
    return proposal["value"]
