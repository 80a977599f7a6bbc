"""The CLI called in-process (a notebook, a test): its logging lasts as long as the command. A console
handler left behind would write into a stream that has closed since (pytest's capsys, a notebook cell's)."""

import logging

from xraymunit.cli import main


def test_main_leaves_the_root_logger_as_it_found_it(tmp_path, capsys):
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    log_file = tmp_path / "cli.log"
    # a command that logs and then fails with one line (no cohort there): exit 2
    code = main(["synthesize", "--checkpoint", str(tmp_path / "none.pt"), "--cohort", str(tmp_path),
                 "--out", str(tmp_path / "s"), "--log-file", str(log_file), "-v"])
    assert code == 2 and capsys.readouterr().err.count("\n") == 1
    assert root.handlers == before and root.level == level
    assert log_file.is_file()


def test_verbose_logs_show_our_debug_lines_not_third_party_ones(tmp_path):
    """-v once printed pylibjpeg's and matplotlib's DEBUG chatter; their warnings still pass."""
    from xraymunit.cli import configure_logging

    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    log_file = tmp_path / "v.log"
    try:
        configure_logging(verbose=True, log_file=str(log_file))
        logging.getLogger("xraymunit.ingestion").debug("ours: debug")
        logging.getLogger("matplotlib.font_manager").debug("theirs: debug")
        logging.getLogger("pydicom").warning("theirs: warning")
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
    text = log_file.read_text()
    assert "ours: debug" in text and "theirs: warning" in text and "theirs: debug" not in text
