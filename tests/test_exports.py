"""The public surface is declared: ``mmws.__all__`` is exactly this sorted set."""

from __future__ import annotations

import importlib
import pkgutil

import mmws


def test_all_is_the_union_of_the_modules_lists_without_repeats() -> None:
    """Each public name is listed once, in the module that defines it; the package's
    ``__all__`` is their union plus the few names defined in the package itself."""
    expected = {
        *mmws.errors.__all__,
        *mmws.lifecycle.__all__,
        *mmws.mm.__all__,
        *mmws.feed.__all__,
        "Health",
        "LineHealth",
        "Recorder",
        "RelayLoss",
        "__version__",
        "to_dict",
        "to_records",
        "replay",
    }
    assert set(mmws.__all__) == expected
    assert len(mmws.__all__) == len(set(mmws.__all__))  # no name listed twice
    for package in (mmws.mm, mmws.feed):
        assert len(package.__all__) == len(set(package.__all__))


def test_the_core_names_are_public() -> None:
    for name in ("MMClient", "FeedClient", "OrderEvent", "Closed", "MmwsError",
                 "ServerError", "ServerErrorEvent", "MMStreamEvent", "FeedStreamEvent",
                 "ConnectTimeout", "CertificateError", "KeepaliveEvent", "UnknownMessage"):
        assert name in mmws.__all__, name


def test_older_import_paths_keep_working() -> None:
    from mmws.feed import SlidingWindow as from_feed
    from mmws.feed.protocol import SlidingWindow as from_protocol
    from mmws.mm import ServerError as mm_event
    from mmws.mm.events import ServerError as event
    from mmws.mm.events import UnknownMessage

    assert event is mm_event is mmws.ServerErrorEvent
    assert UnknownMessage is mmws.UnknownMessage
    assert from_feed is from_protocol


def test_every_exported_name_exists() -> None:
    missing = [name for name in mmws.__all__ if not hasattr(mmws, name)]
    assert missing == []


def test_server_error_names_do_not_collide() -> None:
    # mmws.ServerError is the exception; the event of the same wire message is separate.
    assert issubclass(mmws.ServerError, mmws.MmwsError)
    assert not issubclass(mmws.ServerErrorEvent, BaseException)


def test_every_public_module_declares_all() -> None:
    missing = []
    for info in pkgutil.walk_packages(mmws.__path__, "mmws."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf.startswith("_") or info.name.startswith("mmws.sim"):
            continue
        module = importlib.import_module(info.name)
        if not hasattr(module, "__all__"):
            missing.append(info.name)
    assert missing == []
