# SPDX-License-Identifier: Apache-2.0
"""The cffi declarations (sealpost/_ffi.py) against the real header: a C
program built with include/sealpost.h prints every size and offset the
binding relies on, and cffi must agree (ABI mode has no compiler to check)."""
import os
import shutil
import subprocess

import pytest

import sealpost
from sealpost._ffi import ffi

FIELDS = {
    "struct sealpost_event": ["type", "status", "error", "client_id", "seq", "id", "count",
                              "sender", "data", "len"],
    "struct sealpost_connect_opts": ["size", "flags", "reconnect_min_ms", "reconnect_max_ms",
                                     "offline_queue_max", "connect_timeout_ms", "keepalive_ms",
                                     "dead_peer_ms", "enrol_token"],
    "struct sealpost_pending": ["client_id", "to", "flags", "len"],
    "struct sealpost_device_info": ["key", "added_s", "label"],
    "struct sealpost_devlist": ["account", "version", "count", "dev"],
    "struct sealpost_log_audit": ["size", "accounts", "bad_leaf", "head", "log_key"],
    "struct sealpost_fanout_device": ["key", "status", "own"],
    "struct sealpost_fanout_result": ["status", "own_status", "version", "own_version",
                                      "group_id", "own_group_id", "retries", "count", "dev"],
    "struct sealpost_prekeys_info": ["onetime", "has_signed", "signed_id", "signed_created_s",
                                     "has_previous"],
    "struct sealpost_prekey_bundle": ["device", "signed_id", "signed_created_s", "signed_key",
                                      "has_onetime", "onetime_id", "onetime_key"],
}


def _header_dir():
    src = os.environ.get("SP_SOURCE_DIR") or os.path.join(os.path.dirname(__file__),
                                                            "..", "..", "..")
    return os.path.join(src, "include")


def test_layout_matches_header(tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not cc:
        pytest.skip("no C compiler to check the layout with")
    lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "sealpost.h"',
             "int main(void) {"]
    for st, fields in FIELDS.items():
        lines.append('printf("%%s %%zu\\n", "%s", sizeof(%s));' % (st, st))
        for f in fields:
            lines.append('printf("%%s.%%s %%zu\\n", "%s", "%s", offsetof(%s, %s));'
                         % (st, f, st, f))
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-I", _header_dir(), str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    want = {}
    for st, fields in FIELDS.items():
        want[st] = ffi.sizeof(st)
        for f in fields:
            want["%s.%s" % (st, f)] = ffi.offsetof(st, f)
    got = {}
    for line in out.splitlines():
        name, v = line.rsplit(" ", 1)
        got[name] = int(v)
    # Both structs grow at the end only: every field the binding knows sits
    # where the header puts it. connect_opts says its own size (a shorter one
    # is a valid older caller); an event may be larger than the binding's
    # declaration only within the room it reserves for one.
    for st in FIELDS:
        if st in ("struct sealpost_pending", "struct sealpost_device_info",
                  "struct sealpost_devlist", "struct sealpost_log_audit"):
            continue        # arrays and caller-sized outputs: sizes must be exact
        assert got.pop(st) >= want.pop(st), st
    assert got == want
    ev_size = int(out.split("struct sealpost_event ", 1)[1].split()[0])
    assert ev_size <= sealpost._EVENT_ROOM
