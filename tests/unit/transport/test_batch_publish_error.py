"""The batch publishing error names what failed and what was held back."""

from dockyard.exceptions import BatchPublishError, DockyardError


def test_message_names_failures_and_held_back_messages() -> None:
    error = BatchPublishError(
        "rabbit",
        {f"m{i}": ValueError(f"refused {i}") for i in range(1, 5)},
        ["m9", "m10"],
    )
    assert isinstance(error, DockyardError)
    assert isinstance(error, ConnectionError)
    assert str(error) == (
        "The rabbit transport did not accept 4 messages of a batch: m1 (ValueError: refused 1); "
        "m2 (ValueError: refused 2); m3 (ValueError: refused 3); and 1 more. 2 later messages "
        "of their keys were held back. Every other message was accepted; the relay retries "
        "these. Hint: see each message's error (a refused destination, a broker limit, a lost "
        "connection)."
    )
    assert error.held_back == ("m9", "m10")
