"""The one sentence an operator reads for a failure of the environment (o2p/errors.py)."""

import errno

from o2p.errors import operator_message


def test_os_errors_name_the_cause_the_place_and_what_to_do():
    text, code = operator_message(OSError(errno.ENOSPC, "No space left on device", "/data/o2p/landing/x"))
    assert code == 1 and text.startswith("no space left on the device at /data/o2p/landing/x: free space")
    text, _ = operator_message(OSError(errno.ENOSPC, "No space left on device"), where="/data/o2p")
    assert "holding /data/o2p" in text
    assert "permission denied at /x" in operator_message(PermissionError(errno.EACCES, "denied", "/x"))[0]
    assert "larger than" in operator_message(OSError(errno.EFBIG, "File too large", "/x"))[0]


def test_a_wrapped_cause_is_found_and_a_true_bug_is_not_explained():
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system", "/ro")
        except OSError as inner:
            raise RuntimeError("writing the batch failed") from inner
    except RuntimeError as outer:
        assert operator_message(outer)[0].startswith("the file system is read-only at /ro")
    assert operator_message(ValueError("a bug")) is None
    assert operator_message(OSError(errno.ENOENT, "No such file", "/x")) is None
