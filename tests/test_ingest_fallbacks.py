"""The fallback readers stream (issue 16): the line count of a file quarantined whole, the
UTF-8 copy of a UTF-16 CSV and the record-by-record CSV reader give what the whole-file
versions gave, on random files of every shape (quoted values spanning lines, broken quotes,
wrong widths, bytes that are not UTF-8, blank lines, CR/CRLF, byte-order marks, UTF-16,
gzip members, cut and corrupt gzip).

The whole-file versions are kept here, byte for byte as they were, as the oracles, but for
one line changed on purpose: a line that is not UTF-8 because it holds a lone UTF-16 surrogate
is quarantined naming it (``why_not_utf8``), not with Python's "invalid continuation byte".
They read the file with today's ``read_input``, which carries a lone surrogate through (its
line quarantined, the rest read); tests/test_sources_base.py pins that against the reader as
it was.
"""

from __future__ import annotations

import gzip
import os
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import crmwatch.ingest
import crmwatch.sources.elf as elf
from crmwatch.errors import Location, SourceFormatError
from crmwatch.ingest import ingest
from crmwatch.schema import Reason
from crmwatch.sources.base import (
    LONE_SURROGATE,
    STAGE_TABLE,
    Content,
    InputFile,
    Quarantine,
    Staged,
    StageReport,
    count_lines,
    file_encoding,
    read_input,
    split_lines,
    why_not_utf8,
)
from crmwatch.sources.elf import (
    _LINE_END,
    LINE_COLUMN,
    MAX_RECORD_LINES,
    ElfCsvSource,
    _as,
    _parse_record,
    read_header,
)
from crmwatch.store import Store

PHASES = [p for p in Phase if not (os.environ.get("CI") and p is Phase.shrink)]
FAST = settings(max_examples=300, deadline=None, phases=PHASES)
SLOW = settings(
    max_examples=30, deadline=None, phases=PHASES, suppress_health_check=[HealthCheck.too_slow]
)

### The whole-file versions (the oracles) ###


def old_lines(path: Path) -> int:
    data = read_input(path)[0]
    return max(1, sum(1 for line in data.splitlines() if line.strip()))


def old_careful_rows(
    f: InputFile, width: int, max_line_size: int, report: StageReport
) -> list[tuple[int, list[str]]]:
    data, problem = read_input(f.path)
    if problem:
        report.quarantined.append(Quarantine(f, None, len(data), Reason.TRUNCATED_INPUT, problem))
    lines = _LINE_END.split(data)
    if lines and lines[-1] == b"":
        lines.pop()
    rows: list[tuple[int, list[str]]] = []
    i = 1
    while i < len(lines):
        line_no, raw = i + 1, lines[i]
        bad = Quarantine(f, line_no, None, Reason.BAD_QUOTING, "")
        if not raw.strip():
            i += 1
            continue
        if len(raw) > max_line_size:
            report.quarantined.append(_as(bad, Reason.LINE_TOO_LONG, f"{len(raw)} bytes"))
            i += 1
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            why = why_not_utf8(raw, e)  # changed on purpose: it was e.reason
            report.quarantined.append(_as(bad, Reason.INVALID_UTF8, f"byte {e.start}: {why}"))
            i += 1
            continue
        end, record = i, text
        while record.count('"') % 2 and end + 1 < len(lines) and end - i < MAX_RECORD_LINES:
            try:
                record += "\n" + lines[end + 1].decode("utf-8")
            except UnicodeDecodeError:
                break
            end += 1
        parsed = _parse_record(record)
        if parsed is not None and len(parsed) == width:
            rows.append((line_no, parsed))
            i = end + 1
            continue
        if parsed is None or record.count('"') % 2:
            reason, detail = Reason.BAD_QUOTING, "not a CSV record: a quote is not closed"
        else:
            reason = Reason.WRONG_COLUMN_COUNT
            detail = f"Expected Number of Columns: {width} Found: {len(parsed)}"
        if end > i:
            parsed_alone = _parse_record(text)
            if parsed_alone is not None and len(parsed_alone) == width:
                rows.append((line_no, parsed_alone))
                i += 1
                continue
        report.quarantined.append(_as(bad, reason, detail))
        i += 1
    return rows


def old_stage_careful(self: ElfCsvSource, store: Store, file: InputFile) -> Staged | None:
    header = read_header(file.path)
    if "EVENT_TYPE" not in header:
        raise SourceFormatError("CSV header has no EVENT_TYPE column", Location(file.path, 1))
    sid = self._begin(store, header, [file])
    self._header = header
    report = StageReport(notes=list(self._notes))
    rows = old_careful_rows(file, len(header), self.max_line_size, report)
    staged = old_python_rows(self, sid, [(file.file_id, line, r) for line, r in rows])
    staged.report = report
    return staged


def old_python_rows(self: ElfCsvSource, sid: str, rows: list[tuple[int, int, list[str]]]) -> Staged:
    table = pa.table(
        {
            **{
                c: pa.array([r[i] or None for _, _, r in rows], pa.string())
                for i, c in enumerate(self._header)
            },
            "file_id": pa.array([fid for fid, _, _ in rows], pa.int64()),
            LINE_COLUMN: pa.array([line for _, line, _ in rows], pa.int64()),
        }
    )
    staged = self._staged(sid, f"{STAGE_TABLE} f")
    staged.exprs["ingest_line"] = elf.ident(LINE_COLUMN)
    staged.line_if_untimed = True
    staged.tables[STAGE_TABLE] = table
    return staged


def old_utf8_path(self: ElfCsvSource, f: InputFile) -> Path:
    if file_encoding(f.path) == "utf-8":
        return f.path
    data, problem = read_input(f.path)
    if problem:
        raise SourceFormatError(problem, Location(f.path))
    if self._copies is None:
        self._copies = tempfile.TemporaryDirectory(prefix="crmwatch-utf16-")
    copy = Path(self._copies.name) / f"{f.file_id}.csv"
    copy.write_bytes(data)
    return copy


@contextmanager
def whole_file_readers() -> Iterator[None]:
    """The ingest as it was: every fallback reading its file whole."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(crmwatch.ingest, "_lines", old_lines)
        mp.setattr(ElfCsvSource, "stage_careful", old_stage_careful)
        mp.setattr(ElfCsvSource, "_python_rows", old_python_rows)
        mp.setattr(ElfCsvSource, "_utf8_path", old_utf8_path)
        yield


### Random files ###

HEADER = ["EVENT_TYPE", "TIMESTAMP", "USER_ID", "URI"]
WIDTH = len(HEADER)

values = st.one_of(
    st.sampled_from(["API", "Login", "", "20250812101112.123", "bad", "005AA"]),
    st.text(alphabet=st.sampled_from('ab ,"\n\r\té'), max_size=6),
)


@st.composite
def records(draw) -> str:
    """One record's text: good, or damaged in one of the ways exports are."""
    kind = draw(st.sampled_from(["good"] * 5 + ["width", "open", "stray", "blank", "ts"]))
    width = WIDTH + (draw(st.sampled_from([-2, -1, 1])) if kind == "width" else 0)
    fields = []
    for i in range(width):
        v = draw(values)
        if i == 0:
            v = draw(st.sampled_from(["API", "Login", "URI"]))
        elif i == 1 and kind != "ts":
            v = f"20250812{draw(st.integers(10, 12))}{draw(st.integers(10, 59))}00.000"
        quote = any(c in v for c in ',"\n\r') or draw(st.booleans())
        fields.append('"' + v.replace('"', '""') + '"' if quote else v)
    text = ",".join(fields)
    if kind == "open":  # a quote left open
        at = draw(st.integers(0, len(text)))
        text = text[:at] + '"' + text[at:]
    elif kind == "stray":  # a quote inside an unquoted value
        text = 'x"y,' + text
    elif kind == "blank":
        text = draw(st.sampled_from(["", " ", "\t", "  \t "]))
    return text


@st.composite
def csv_bytes(draw) -> bytes:
    """A CSV file's UTF-8 bytes: the header, records, odd bytes, mixed line ends."""
    out = [",".join(HEADER).encode()]
    for _ in range(draw(st.integers(0, 14))):
        line = draw(records()).encode()
        if draw(st.integers(0, 9)) == 0:  # bytes that are not UTF-8
            at = draw(st.integers(0, len(line)))
            line = line[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82"])) + line[at:]
        out.append(line)
    ends = [draw(st.sampled_from([b"\n", b"\n", b"\r\n", b"\r"])) for _ in out]
    data = b"".join(line + end for line, end in zip(out, ends, strict=True))
    if draw(st.booleans()):  # the last line without a line break
        data = data[: -len(ends[-1])]
    return data


def _utf16(data: bytes, big: bool) -> bytes:
    text = data.decode("utf-8", "replace")
    return b"\xfe\xff" + text.encode("utf-16-be") if big else b"\xff\xfe" + text.encode("utf-16-le")


def _members(data: bytes, at: int) -> bytes:
    at = min(at, len(data))
    return gzip.compress(data[:at]) + b"\x00\x00" + gzip.compress(data[at:])


def _corrupt(data: bytes, at: int) -> bytes:
    """Two gzip members, the second damaged: its output is not the file's content."""
    first, second = gzip.compress(data[: len(data) // 2]), bytearray(gzip.compress(data))
    pos = 10 + at % max(1, len(second) - 18)
    second[pos] ^= 0x55
    return first + bytes(second)


WRAPPERS = {
    "plain": lambda d, n: d,
    "utf-8 bom": lambda d, n: b"\xef\xbb\xbf" + d,
    "utf-16 le": lambda d, n: _utf16(d, big=False),
    "utf-16 be": lambda d, n: _utf16(d, big=True),
    "utf-16 lone surrogate": lambda d, n: _utf16(d[:n], False) + b"\x00\xdc" + _utf16(d, False),
    "utf-16 odd byte": lambda d, n: _utf16(d, big=True) + b"\x41",
    "gzip": lambda d, n: gzip.compress(d),
    "gzip members": _members,
    "gzip bom": lambda d, n: gzip.compress(b"\xef\xbb\xbf" + d),
    "gzip utf-16": lambda d, n: _members(_utf16(d, big=False), n),
    "gzip cut short": lambda d, n: gzip.compress(d)[: max(11, len(gzip.compress(d)) - n)],
    "gzip corrupt member": _corrupt,
    "gzip trailer": lambda d, n: gzip.compress(d) + b"not gzip",
}


@st.composite
def files(draw) -> bytes:
    data = draw(csv_bytes())
    wrap = draw(st.sampled_from(sorted(WRAPPERS)))
    return WRAPPERS[wrap](data, draw(st.integers(0, 400)))


def _file(data: bytes, name: str = "f.csv") -> InputFile:
    path = Path(tempfile.mkdtemp()) / name
    path.write_bytes(data)
    return InputFile.of(path)


def _entries(report: StageReport) -> list[tuple]:
    return [
        (q.line, q.byte_offset, q.reason, q.detail, q.key, q.records) for q in report.quarantined
    ]


EXAMPLES = [
    b"",
    b"EVENT_TYPE,TIMESTAMP,USER_ID,URI",
    b'EVENT_TYPE,TIMESTAMP,USER_ID,URI\r\nAPI,1,"a\r\nb",x\r\n\r\n  \r',
    b'EVENT_TYPE,TIMESTAMP,USER_ID,URI\nAPI,1,"open,2,3\nAPI,2,b,c\n',
    b"\xef\xbb\xbfEVENT_TYPE,TIMESTAMP\rAPI,\xff\r\r \t\x0b\x0c\rz",
    gzip.compress(b"EVENT_TYPE,TIMESTAMP,USER_ID,URI\nAPI,1,2,3\n" * 50)[:-30],
]

### The content, streamed ###


@FAST
@given(files(), st.sampled_from([1, 2, 3, 5, 1 << 24]))
def test_content_is_what_read_input_gives(data: bytes, piece_bytes: int):
    f = _file(data)
    content = Content(f.path, piece_bytes)
    pieces = list(content)
    whole, problem = read_input(f.path)
    assert (b"".join(pieces), content.problem, content.size) == (whole, problem, len(whole))


def test_content_leaves_out_a_corrupt_member_read_in_several_pieces():
    """A member's output yielded before its damage shows is left out all the same."""
    rng = random.Random(16)
    good = b"EVENT_TYPE,TIMESTAMP\nAPI,1\n"
    big = b"".join(b"API,%x\n" % rng.getrandbits(64) for _ in range(60000))
    damaged = bytearray(gzip.compress(big))
    damaged[-100] ^= 0x55
    f = _file(gzip.compress(good) + bytes(damaged))
    content = Content(f.path)
    assert (b"".join(content), content.problem) == read_input(f.path)
    assert content.size == len(good) and "member 2" in content.problem


pieces_of_lines = st.lists(
    st.lists(st.sampled_from([b"\r", b"\n", b"a", b" ", b"\t", b"\x0b"]), max_size=5).map(b"".join),
    max_size=8,
)


@FAST
@given(pieces_of_lines)
def test_split_lines_splits_as_the_whole_content_did(pieces: list[bytes]):
    lines = _LINE_END.split(b"".join(pieces))
    if lines[-1] == b"":
        lines.pop()
    assert list(split_lines(pieces)) == lines


@FAST
@given(pieces_of_lines)
def test_count_lines_counts_as_the_whole_content_did(pieces: list[bytes]):
    data = b"".join(pieces)
    assert count_lines(pieces) == sum(1 for line in data.splitlines() if line.strip())


### Line count of a file quarantined whole ###


@FAST
@given(files())
@example(b"\n\r\n\r")
@example(b"a\rb\r\nc\n\nd")
@example(b"\x0b\x0c \t\n x")
def test_lines_count_as_the_whole_file_did(data: bytes):
    f = _file(data)
    assert crmwatch.ingest._lines(f.path) == old_lines(f.path)


@pytest.mark.parametrize("data", EXAMPLES)
def test_lines_count_as_the_whole_file_did_examples(data: bytes):
    f = _file(data)
    assert crmwatch.ingest._lines(f.path) == old_lines(f.path)


### The UTF-8 copy of a UTF-16 file ###


def _copy_or_error(data: bytes, utf8_path) -> tuple[bytes | None, str | None]:
    f = _file(data)
    source = ElfCsvSource()
    try:
        path = utf8_path(source, f)
    except SourceFormatError as e:
        leftovers = list(Path(source._copies.name).iterdir()) if source._copies else []
        assert leftovers == [], "a partial copy was left behind"
        return None, str(e)
    return path.read_bytes(), None


@FAST
@given(files())
def test_utf8_copy_is_what_the_whole_file_gave(data: bytes):
    assert _copy_or_error(data, ElfCsvSource._utf8_path) == _copy_or_error(data, old_utf8_path)


@pytest.mark.parametrize("wrap", sorted(WRAPPERS))
def test_utf8_copy_is_what_the_whole_file_gave_per_shape(wrap: str):
    data = WRAPPERS[wrap](EXAMPLES[2] * 3 + b"\n" + "é€😀".encode() * 40000, 20)
    new = _copy_or_error(data, ElfCsvSource._utf8_path)
    assert new == _copy_or_error(data, old_utf8_path)
    if wrap.startswith("utf-16 ") and wrap.endswith(("le", "be")):
        assert new[0] is not None and new[0].endswith("😀".encode())


### The record-by-record reader ###


def _careful(data: bytes, reader, max_line_size: int) -> tuple[list, list]:
    f = _file(data)
    report = StageReport()
    rows = list(reader(f, WIDTH, max_line_size, report))
    return rows, _entries(report)


@FAST
@given(files(), st.sampled_from([12, 40, 1 << 20]))
def test_careful_rows_are_what_the_whole_file_gave(data: bytes, max_line_size: int):
    assert _careful(data, elf.careful_rows, max_line_size) == _careful(
        data, old_careful_rows, max_line_size
    )


@pytest.mark.parametrize("data", EXAMPLES)
def test_careful_rows_are_what_the_whole_file_gave_examples(data: bytes):
    assert _careful(data, elf.careful_rows, 40) == _careful(data, old_careful_rows, 40)


@pytest.mark.parametrize("spans", [MAX_RECORD_LINES, MAX_RECORD_LINES + 1, MAX_RECORD_LINES + 2])
def test_careful_rows_value_spanning_lines_up_to_the_bound(spans: int):
    """A quoted value may span MAX_RECORD_LINES + 1 lines, not more."""
    value = "\n".join(["v"] * spans).encode()
    data = b'EVENT_TYPE,TIMESTAMP,USER_ID,URI\nAPI,1,2,"' + value + b'"\nAPI,1,2,3\n'
    new = _careful(data, elf.careful_rows, 1 << 20)
    assert new == _careful(data, old_careful_rows, 1 << 20)
    assert (new[0][0][0] == 2) == (spans <= MAX_RECORD_LINES + 1)


def test_careful_rows_look_ahead_is_bounded():
    """A quote left open takes at most MAX_RECORD_LINES more lines: the lines after stay
    good records, and a good record longer than that is no record."""
    body = b"API,1,2,3\n" * (MAX_RECORD_LINES + 50)
    data = b'EVENT_TYPE,TIMESTAMP,USER_ID,URI\nAPI,1,2,"open\n' + body
    rows, entries = _careful(data, elf.careful_rows, 1 << 20)
    assert (rows, entries) == _careful(data, old_careful_rows, 1 << 20)
    assert len(rows) == MAX_RECORD_LINES + 50 and [e[0] for e in entries] == [2]


def test_careful_rows_truncated_gzip_comes_first_with_its_offset():
    data = b"EVENT_TYPE,TIMESTAMP,USER_ID,URI\n" + b'API,1,2,"x\n' * 2000
    cut = gzip.compress(data)[:-40]
    rows, entries = _careful(cut, elf.careful_rows, 1 << 20)
    assert (rows, entries) == _careful(cut, old_careful_rows, 1 << 20)
    assert entries[0][2] == Reason.TRUNCATED_INPUT and entries[0][1] == len(
        read_input(_file(cut).path)[0]
    )


### Ingested end to end, into a real store ###


def _both(data: bytes, name: str) -> tuple[tuple, tuple]:
    """The same file, at the same path, ingested as now and as the whole-file readers did."""
    folder = Path(tempfile.mkdtemp())
    path = folder / name
    path.write_bytes(data)
    out = []
    for readers in (nullcontext(), whole_file_readers()):
        with readers, Store(folder / f"s{len(out)}.duckdb") as store:
            [summary] = ingest(store, [path]).files
            out.append(
                (
                    summary.to_dict(),
                    store.execute("SELECT * FROM events_base ORDER BY ALL").rows,
                    # ordered by content: the driver's order of bad timestamps varies
                    # from run to run (read without ORDER BY)
                    store.execute("SELECT * FROM quarantine ORDER BY ALL").rows,
                    store.execute("SELECT * FROM ingest_files ORDER BY ALL").rows,
                )
            )
    return out[0], out[1]


@SLOW
@given(files(), st.sampled_from(["a.csv", "a.csv.gz", "a.log"]))
def test_ingest_stores_what_the_whole_file_readers_stored(data: bytes, name: str):
    new, old = _both(data, name)
    assert new == old


@pytest.mark.parametrize("wrap", sorted(WRAPPERS))
def test_ingest_stores_what_the_whole_file_readers_stored_per_shape(wrap: str):
    rows = b"".join(b'API,20250812101%03d.000,005%d,"a\nb"\r\n' % (i % 600, i) for i in range(3000))
    data = b"EVENT_TYPE,TIMESTAMP,USER_ID,URI\n" + rows + b'Login,"open,x,y\n\xff,1,2,3\nbad\n'
    new, old = _both(WRAPPERS[wrap](data, 5000), "a.csv")
    assert new == old
    assert new[0]["records"] > 0 or "corrupt" in new[0]["error"]  # a corrupt head: no format


def test_ingest_of_gzip_whose_member_past_the_head_is_corrupt():
    """The damaged member's output is left out; what precedes it is read record by record."""
    rows = b"".join(
        b"API,2025081210%02d%02d.000,005%d,/\n" % (i // 60 % 60, i % 60, i) for i in range(40000)
    )
    data = b"EVENT_TYPE,TIMESTAMP,USER_ID,URI\n" + rows
    new, old = _both(gzip.compress(data) + _corrupt(b'API,1,"2\n,\xff\n' * 30, 7), "a.csv")
    assert new == old
    assert new[0]["inserted"] == 40000 and new[0]["reasons"]["truncated_input"] == 1


def test_ingest_of_an_unknown_file_counts_its_lines_as_before():
    data = b"not a log\r\n\r\n  \n" + b"x" * 100 + b"\ry"
    new, old = _both(gzip.compress(data), "notes.log")
    assert new == old and new[0]["records"] == 3


def test_ingest_of_utf16_csv_cut_inside_a_unit_reads_what_precedes_it(store: Store, tmp_path):
    """A UTF-16 CSV that ends with an odd byte is read record by record up to it (the careful
    reader's follow-up once raised AttributeError: the scan it looks for was never made)."""
    text = "EVENT_TYPE,TIMESTAMP,USER_ID,URI\nAPI,20250812101112.000,005A,/\n"
    path = tmp_path / "a.csv"
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le") + b"A")
    [f] = ingest(store, [path]).files
    assert (f.error, f.inserted, dict(f.reasons)) == (None, 1, {"truncated_input": 1})


def test_ingest_of_utf16_csv_with_a_lone_surrogate_quarantines_its_line(store: Store, tmp_path):
    """A lone surrogate costs its line only (it once stopped the reading: "not valid UTF-16
    ...; the rest of the file is not read", the rows after it lost)."""
    text = "EVENT_TYPE,TIMESTAMP,USER_ID,URI\nAPI,20250812101112.000,005A,/\n"
    after = "API,20250812101113.000,005B,/\n"
    path = tmp_path / "a.csv"
    path.write_bytes(
        b"\xff\xfe" + text.encode("utf-16-le") + b"\x00\xdcA\x00\n\x00" + after.encode("utf-16-le")
    )
    [f] = ingest(store, [path]).files
    assert (f.error, f.records, f.inserted, dict(f.reasons)) == (None, 3, 2, {"invalid_utf8": 1})
    assert store.execute("SELECT line, reason, detail FROM quarantine").rows == [
        (3, "invalid_utf8", f"byte 0: {LONE_SURROGATE}")
    ]


def test_careful_ingest_reads_no_file_whole(store: Store, tmp_path, monkeypatch):
    """Issue 16: a file DuckDB's reader loses its place in, and a UTF-16 one, are read by
    Python as streams."""

    def refuse(*args, **kwargs):
        raise AssertionError("the file was read whole in Python")

    for module in (crmwatch.ingest, crmwatch.sources.base, elf):
        if hasattr(module, "read_input"):
            monkeypatch.setattr(module, "read_input", refuse)
    data = EXAMPLES[3] + b"API,20250812101112.000,\xff,x\n"
    (tmp_path / "a.csv").write_bytes(gzip.compress(data)[:-5])
    (tmp_path / "b.csv").write_bytes(_utf16(data.replace(b"\xff", b"y"), big=True))
    (tmp_path / "c.log").write_bytes(b"not a log\n")
    summary = {Path(f.path).name: f for f in ingest(store, [tmp_path]).files}
    assert [summary[n].error for n in ("a.csv", "b.csv", "c.log")] == [None] * 3
    assert summary["a.csv"].reasons["truncated_input"] == 1
