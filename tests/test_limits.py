"""Limits on what a registered party can make a server or the dealer do: whole messages are
bounded (frames and bytes), the dealer bounds a job's correlations, and a secret key file that
others could read is refused."""

import asyncio
import os

import numpy as np
import pytest

from tests.support.cli import twofold
from tests.support.harness import keypair
from tests.support.servers import make_deployment, running
from twofold.mpc.curve import generate_keypair, load_keypair
from twofold.mpc.dealer import Dealer
from twofold.mpc.files import SecretFileError
from twofold.mpc.rpc import ServerAddress, ServiceError, service_clients
from twofold.mpc.signing import generate_signing_keypair, load_signing_key
from twofold.servers.config import ConfigError, load_server_config
from twofold.servers.server import MAX_MESSAGE_FRAMES


def test_a_message_over_the_frame_or_byte_bound_is_refused_and_the_server_keeps_serving(
        tmp_path):
    deployment = make_deployment(tmp_path)

    async def scenario():
        async with running(deployment, which=(0,)) as (server,):
            server.max_message_bytes = 4 << 20  # the default, 1 GiB, is too much for a test
            async with service_clients(deployment.owner_keys["alice"],
                                       deployment.addresses()[:1], 10.0) as (client,):
                hello = {"action": "hello"}
                many = [np.zeros(1, np.uint64)] * MAX_MESSAGE_FRAMES  # one frame each
                with pytest.raises(ServiceError, match=f"a message of {MAX_MESSAGE_FRAMES + 1} "
                                   f"frames, more than the {MAX_MESSAGE_FRAMES} allowed"):
                    await client.call(hello, many)
                large = [np.zeros(1 << 17, np.uint64)] * 5  # 1 MiB frames, 5 MiB in all
                with pytest.raises(ServiceError, match="bytes, more than the 4194304 allowed"):
                    await client.call(hello, large)
                return await client.call(hello)

    reply, _ = asyncio.run(scenario())
    assert reply["ok"] is True


def test_the_dealer_refuses_requests_over_its_bounds_and_keeps_serving():
    server0, server1, dealer_keys = keypair(), keypair(), keypair()

    async def scenario():
        dealer = Dealer(dealer_keys, (server0.public, server1.public), "tcp://127.0.0.1:*",
                        max_job_elements=1000)
        ready = asyncio.Event()
        task = asyncio.create_task(dealer.serve(ready))
        await ready.wait()
        try:
            address = ServerAddress(dealer.address, dealer_keys.public)
            async with service_clients(server1, [address], 10.0) as (client,):
                await client.call({"action": "open", "job": "j"})

                def get(seq, shape):
                    return client.call({"action": "get", "job": "j",
                                        "requests": [[seq, "beaver_triples", {"shape": shape}]]})

                with pytest.raises(ServiceError, match="request for 1000000000000 elements "
                                                       "exceeds"):
                    await get(0, [10**12])  # 10^12 triples: refused, not attempted
                with pytest.raises(ServiceError, match="a message of 2 frames"):
                    await client.call({"action": "close", "job": "j"}, [np.zeros(1, np.uint64)])
                served, _ = await get(1, [500])
                with pytest.raises(ServiceError, match="job j would take .* correlation "
                                                       "elements in all, over the dealer's "
                                                       "bound of 1000 per job"):
                    await get(2, [800])
                return served
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    assert asyncio.run(scenario())["ok"] is True


def test_a_secret_key_file_open_to_others_is_refused_with_the_fix(tmp_path):
    _, secret = generate_keypair(tmp_path, "alice")
    assert load_keypair(secret).public  # 0600, as written
    _, signing = generate_signing_keypair(tmp_path, "server0")
    assert load_signing_key(signing)
    for path, load in [(secret, load_keypair), (signing, load_signing_key)]:
        os.chmod(path, 0o640)
        with pytest.raises(SecretFileError, match=f"^{path} is open to group or others "
                                                  f"\\(mode 0640\\); run chmod 600 {path}$"):
            load(path)


@pytest.mark.slow  # a process
def test_a_command_with_an_open_key_file_fails_in_one_line(tmp_path):
    generate_keypair(tmp_path / "keys", "alice")
    generate_keypair(tmp_path / "keys", "server0")
    config = tmp_path / "alice.toml"
    config.write_text('[owner]\nsecret_key = "keys/alice.key_secret"\n'
                      + '[[servers]]\naddress = "tcp://127.0.0.1:1"\npublic_key = '
                      '"keys/server0.key"\n' * 2)
    os.chmod(tmp_path / "keys" / "alice.key_secret", 0o644)
    run = twofold("owner", "tables", "--config", config)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        f"twofold: {config}: {tmp_path}/keys/alice.key_secret is open to group or others "
        f"(mode 0644); run chmod 600 {tmp_path}/keys/alice.key_secret"]


def test_a_server_config_with_an_open_key_file_is_refused(tmp_path):
    generate_keypair(tmp_path / "keys", "server0")
    generate_keypair(tmp_path / "keys", "server1")
    os.chmod(tmp_path / "keys" / "server0.key_secret", 0o604)
    config = tmp_path / "server0.toml"
    config.write_text('[server]\nparty = 0\nsecret_key = "keys/server0.key_secret"\n'
                      'peer_public_key = "keys/server1.key"\npeer_address = "tcp://x:1"\n'
                      'correlations = "ot"\nlisten = "tcp://x:2"\n'
                      'peer_service_address = "tcp://x:3"\nschema = "s.toml"\n'
                      'data_dir = "data"\n')
    with pytest.raises(ConfigError, match="server0.key_secret is open to group or others "
                                          "\\(mode 0604\\); run chmod 600"):
        load_server_config(config)
