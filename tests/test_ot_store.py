"""COTs made in idle time (`twofold server preprocess`): stored as privately as shares, used
by the next jobs first, each batch deleted before use, and a batch only one server still holds
(after a crash) never used."""

import asyncio
import os
import stat

from tests.support.correlation_checks import check
from tests.support.harness import free_address, keypair, run_pair
from twofold.mpc.ot.pool import CotPool
from twofold.mpc.ot.store import CotStore, direction_of
from twofold.mpc.session import Endpoints
from twofold.servers.preprocessing import preprocess

BATCH = CotPool.batch_size()


def preprocess_both(folders, target):
    keys = keypair(), keypair()
    address = free_address()
    ends = [Endpoints(p, keys[p], keys[1 - p].public, address, timeout_s=20,
                      correlations="ot", cot_store=folders[p]) for p in (0, 1)]

    async def both():
        return await asyncio.gather(*(preprocess(end, target) for end in ends))

    return asyncio.run(both())


async def beaver(party):
    return await party.corr.beaver_triples([1000])


def test_preprocessed_cots_are_private_used_first_and_deleted_before_use(tmp_path):
    folders = [tmp_path / "data0" / "correlations", tmp_path / "data1" / "correlations"]
    assert preprocess_both(folders, 2 * BATCH) == [2 * BATCH, 2 * BATCH]
    assert preprocess_both(folders, 2 * BATCH) == [0, 0]  # already full: nothing more made
    stores = [CotStore(folder) for folder in folders]
    assert stores[0].ids() == stores[1].ids() and len(stores[0].ids()) == 4
    for folder in folders:
        for path in folder.iterdir():
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    triple0, triple1 = run_pair(beaver, source="ot", cot_stores=folders)
    check("beaver_triples", {"shape": [1000]}, triple0, triple1)
    left = [store.ids() for store in stores]
    assert left[0] == left[1] and len(left[0]) == 2  # one stored batch per direction used
    assert {direction_of(i) for i in left[0]} == {0, 1}


def test_a_batch_only_one_server_holds_is_discarded(tmp_path):
    folders = [tmp_path / "data0" / "correlations", tmp_path / "data1" / "correlations"]
    preprocess_both(folders, BATCH)
    stores = [CotStore(folder) for folder in folders]
    lost = stores[1].ids()[0]  # server 1 crashed after deleting its half of this batch
    stores[1].discard([lost])
    triple0, triple1 = run_pair(beaver, source="ot", cot_stores=folders)
    check("beaver_triples", {"shape": [1000]}, triple0, triple1)
    assert lost not in stores[0].ids()
    assert stores[0].ids() == stores[1].ids()
