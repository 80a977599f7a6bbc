"""stopping.py: SIGTERM sets a flag the stage checks between units; the CLI exits 143."""

import os
import signal
import threading

from xraymunit.stopping import EXIT_TERMINATED, Stopped, stop_requests


def test_sigterm_sets_the_flag_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with stop_requests() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_outside_the_main_thread_nothing_is_installed():
    seen = {}

    def worker():
        with stop_requests() as stop:
            seen["handler"] = signal.getsignal(signal.SIGTERM)
            seen["requested"] = stop.requested

    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"handler": before, "requested": False}


def test_stopped_maps_to_143_in_the_cli(monkeypatch, capsys):
    from xraymunit import cli

    def stage(args):
        raise Stopped("saved step 7 to out/checkpoints/last.pt; rerun with --resume to continue")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    sub = parser._subparsers._group_actions[0].choices["ingest"]
    sub.set_defaults(func=stage)
    assert cli.main(["ingest", "somewhere"]) == EXIT_TERMINATED == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["xraymunit ingest: stopped: saved step 7 to out/checkpoints/last.pt; rerun with --resume to continue"]
