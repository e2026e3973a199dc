"""The mock SMSC's bind admission: one check per bind knob, the first refusal wins (pure)."""

from __future__ import annotations

from broadcaster.mocksmsc.binding import BindRequest, bind_refusal
from broadcaster.mocksmsc.scenario import MockConfig
from broadcaster.smpp import codec
from broadcaster.smpp.constants import CommandId, Status


def request(mode: str = "transceiver", attempt: int = 1, bound_now: int = 0) -> BindRequest:
    pdu = codec.encode_bind(CommandId.BIND_TRANSCEIVER, 1, "broadcaster", "secret")
    return BindRequest(codec.decode_bind(pdu), mode, attempt, bound_now)


def test_the_default_mock_takes_any_bind() -> None:
    assert bind_refusal(MockConfig(), request()) is None


def test_each_knob_refuses_with_its_status() -> None:
    fail = Status.ESME_RBINDFAIL
    cases = [
        (MockConfig(refuse_binds=True), request(), ("refused", fail)),
        (MockConfig(refuse_first_binds=2), request(attempt=2), ("refused", fail)),
        (MockConfig(refuse_first_binds=2), request(attempt=3), None),
        (
            MockConfig(bind_modes=("transmitter",)),
            request("receiver"),
            ("mode receiver not allowed", fail),
        ),
        (MockConfig(max_binds=2), request(bound_now=2), ("max_binds 2 reached", fail)),
        (MockConfig(max_binds=2), request(bound_now=1), None),
        (MockConfig(system_id="other"), request(), ("system_id", Status.ESME_RINVSYSID)),
        (MockConfig(password="other"), request(), ("password", Status.ESME_RINVPASWD)),
        (MockConfig(system_id="broadcaster", password="secret"), request(), None),
    ]
    for config, bind, refusal in cases:
        assert bind_refusal(config, bind) == refusal, config


def test_the_first_refusal_in_order_wins() -> None:
    everything = MockConfig(
        refuse_binds=True, bind_modes=("transmitter",), system_id="x", password="y"
    )
    assert bind_refusal(everything, request("receiver")) == ("refused", Status.ESME_RBINDFAIL)
    assert bind_refusal(everything.replace(refuse_binds=False), request("receiver")) == (
        "mode receiver not allowed",
        Status.ESME_RBINDFAIL,
    )
    credentials = MockConfig(system_id="x", password="y")
    assert bind_refusal(credentials, request()) == ("system_id", Status.ESME_RINVSYSID)
