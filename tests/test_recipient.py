"""Outputs revealed to an outside recipient, who alone reconstructs them."""

import asyncio

import numpy as np
import pytest

from mpc.errors import PeerTimeout, ProtocolMismatch
from mpc.recipient import OutputReceiver, send_to_recipient
from mpc.sharing import split
from tests.harness import keypair


def test_recipient_reconstructs_both_shares():
    values = np.arange(-5, 5, dtype=np.int64)
    share0, share1 = split(values)
    keys = [keypair(), keypair()]
    recipient_keys = keypair()

    async def main():
        receiver = OutputReceiver(recipient_keys, (keys[0].public, keys[1].public))
        address = receiver.listen()
        try:
            sends = [send_to_recipient(p, keys[p], recipient_keys.public, address, "job", "out",
                                       [share], 5.0) for p, share in enumerate((share0, share1))]
            (result,), *_ = await asyncio.gather(receiver.receive("job", "out", 5.0), *sends)
            return result
        finally:
            receiver.close()

    assert np.array_equal(asyncio.run(main()).view(np.int64), values)


def test_recipient_refuses_foreign_servers_and_wrong_jobs():
    keys = [keypair(), keypair()]
    recipient_keys = keypair()

    async def main(sender_keys, job):
        receiver = OutputReceiver(recipient_keys, (keys[0].public, keys[1].public))
        address = receiver.listen()
        try:
            send = send_to_recipient(0, sender_keys, recipient_keys.public, address, job, "out",
                                     [np.zeros(3, np.uint64)], 1.0)
            return await asyncio.gather(receiver.receive("job", "out", 1.0), send,
                                        return_exceptions=True)
        finally:
            receiver.close()

    received, sent = asyncio.run(main(keypair(), "job"))  # an unregistered server key
    assert isinstance(received, PeerTimeout) and isinstance(sent, PeerTimeout)
    received, _ = asyncio.run(main(keys[0], "other-job"))
    assert isinstance(received, ProtocolMismatch)
