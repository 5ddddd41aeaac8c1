"""A registry upgraded by a newer o2p: this code refuses it with one sentence and changes nothing
(Alembic alone says "Can't locate revision identified by '0009'")."""

import pytest
from sqlalchemy import create_engine, text

from o2p.errors import O2PError
from o2p.migrations import HEAD, current
from o2p.registry import Registry
from tests.conftest import run_o2p


def test_a_registry_from_a_newer_o2p_is_refused_and_left_alone(tmp_path):
    url = f"sqlite:///{tmp_path / 'home' / 'registry.sqlite'}"
    reg = Registry(url)
    assert current(reg.engine) == HEAD
    with reg.engine.begin() as c:
        c.execute(text("update alembic_version set version_num = '0009'"))
    reg.engine.dispose()
    with pytest.raises(O2PError, match=f"is at schema revision 0009, which this o2p does not know "
                                       f"\\(it knows up to {HEAD}\\): a newer o2p upgraded it"):
        Registry(url)
    listed = run_o2p("payouts", "list", env={"O2P_HOME": str(tmp_path / "home")}, check=False)
    assert listed.returncode == 1 and "schema revision 0009" in listed.stderr and "Traceback" not in listed.stderr
    with create_engine(url).connect() as c:
        assert c.execute(text("select version_num from alembic_version")).scalar() == "0009"
