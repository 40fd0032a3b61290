"""Trace files as users have them (helper u14c's pass): compressed, saved with a byte-order mark, with a field too
many on a row, not UTF-8, hash blocks beyond the prompt; each refused naming the file, the line and the column, or
read as the publisher's layout means it."""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from objectives import serving
from objectives.serving import Trace, traces

AZURE = ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n"
         "2023-11-16 18:15:50.9951690,396,109\n")
MOONCAKE = ('{"timestamp": 0, "input_length": 1000, "output_length": 52, "hash_ids": [0, 1]}\n'
            '{"timestamp": 27, "input_length": 400, "output_length": 10, "hash_ids": [0]}\n')


def _write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def test_gzipped_csv_and_jsonl_read_as_the_plain_files(tmp_path):
    # public traces travel compressed (BurstGPT's releases, Azure's week-long 2024 files): a .gz is read as its content
    plain = serving.read_trace(_write(tmp_path, "conv.csv", AZURE))
    packed = serving.read_trace(_write(tmp_path, "conv.csv.gz", gzip.compress(AZURE.encode())))
    assert packed == plain and "conv.csv.gz" in packed.source
    m_plain = serving.read_trace(_write(tmp_path, "trace.jsonl", MOONCAKE))
    m_packed = serving.read_trace(_write(tmp_path, "trace.jsonl.gz", gzip.compress(MOONCAKE.encode())))
    assert m_packed == m_plain and m_packed.hash_ids is not None


def test_a_gz_that_is_not_gzip_names_the_file(tmp_path):
    p = _write(tmp_path, "conv.csv.gz", AZURE)
    with pytest.raises(ValueError, match=r"conv\.csv\.gz.*gzip"):
        serving.read_trace(p)


def test_a_byte_order_mark_does_not_hide_the_header(tmp_path):
    # Excel and PowerShell save CSV as UTF-8 with a BOM: the first column is TIMESTAMP all the same
    t = serving.read_trace(_write(tmp_path, "bom.csv", "\ufeff" + AZURE))
    assert t == serving.read_trace(_write(tmp_path, "plain.csv", AZURE))
    m = serving.read_trace(_write(tmp_path, "bom.jsonl", "\ufeff" + MOONCAKE))
    assert len(m) == 2


def test_a_row_with_more_fields_than_the_header_is_refused_at_its_line(tmp_path):
    # pandas takes the extra leading field of such rows as an index and shifts every column one to the right: the
    # dse layout then read input_tokens as arrival_s and output_tokens as input_tokens without a word
    p = _write(tmp_path, "shifted.csv", "arrival_s,input_tokens,output_tokens\n0,100,10,5\n1,200,20,6\n")
    with pytest.raises(ValueError, match=re.escape(f"trace file {str(p)!r}, line 2: 4 fields, the header has 3")):
        serving.read_trace(p)
    later = _write(tmp_path, "later.csv", "arrival_s,input_tokens,output_tokens\n0,100,10\n1,200,20\n2,300,30,7\n")
    with pytest.raises(ValueError, match=re.escape(f"trace file {str(later)!r}, line 4: 4 fields, the header has 3")):
        serving.read_trace(later)


def test_a_trailing_comma_on_every_row_is_read_as_the_columns_say(tmp_path):
    # a trailing delimiter (an empty last field) is what spreadsheet exports write: not a shifted column
    p = _write(tmp_path, "trailing.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
               "5,ChatGPT,472,18,490,Conversation log,\n45,ChatGPT,1087,30,1117,Conversation log,\n")
    t = serving.read_trace(p)
    assert t.input_tokens.tolist() == [472, 1087] and t.output_tokens.tolist() == [18, 30]
    assert t.arrival_s.tolist() == [0.0, 40.0]


def test_a_jsonl_that_is_not_utf8_names_the_file_and_line(tmp_path):
    p = _write(tmp_path, "latin1.jsonl", MOONCAKE.encode() + b'{"timestamp": 30, "input_length": 5, "x": "\xe9"}\n')
    with pytest.raises(ValueError, match=re.escape(f"trace file {str(p)!r}, line 3") + r".*UTF-8"):
        serving.read_trace(p)


@pytest.mark.parametrize(("row", "shown"), [("1700000000,4,5", "1700000000"), ("1.7e9,4,5", "1700000000")])
def test_a_numeric_timestamp_is_named_as_written(tmp_path, row, shown):
    p = _write(tmp_path, "epoch.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n" + row + "\n")
    with pytest.raises(ValueError) as exc:
        serving.read_trace(p)
    msg = str(exc.value)
    assert "np." not in msg and f"line 2, column 'TIMESTAMP' (1): {shown} is not a timestamp" in msg


def test_an_infinite_token_count_is_named_as_written(tmp_path):
    p = _write(tmp_path, "inf.csv", AZURE + "2023-11-16 18:15:51.0,inf,5\n")
    with pytest.raises(ValueError) as exc:
        serving.read_trace(p)
    msg = str(exc.value)
    assert "np." not in msg and "line 4, column 'ContextTokens' (2): inf is not a finite number" in msg


def test_hash_blocks_beyond_the_prompt_are_refused(tmp_path):
    # Mooncake hashes each prompt in ceil(input_length / 512) blocks (both public traces, every line); blocks past
    # the prompt would let the prefix cache hit tokens the prompt does not have (a 10-token prompt "hit" 0.88)
    p = _write(tmp_path, "over.jsonl", MOONCAKE + '{"timestamp": 30, "input_length": 10, "output_length": 5, '
               '"hash_ids": [0, 1, 2]}\n')
    with pytest.raises(ValueError, match=re.escape(f"trace file {str(p)!r}, line 3, field 'hash_ids'") +
                       r".*3 blocks.*10 tokens.*at most 1"):
        serving.read_trace(p)
    with pytest.raises(ValueError, match=r"request 0 .*3 hash blocks.*at most 1"):
        Trace(None, np.array([10]), np.array([5]), hash_ids=np.array([0, 1, 2]), hash_offsets=np.array([0, 3]))
    # fewer blocks than the prompt holds (hashing stopped early) stay valid: the rest of the prompt is its own
    t = Trace(None, np.array([2000]), np.array([5]), hash_ids=np.array([7]), hash_offsets=np.array([0, 1]))
    assert t.blocks(0).tolist() == [7]


def test_shipped_mooncake_sample_holds_its_hash_blocks():
    t = traces.load_sample("mooncake_conversation")
    assert (np.diff(t.hash_offsets) == -(-t.input_tokens // t.block_tokens)).all()


def test_rates_and_indices_refuse_booleans_and_fractions():
    t = traces.load_sample("azure_conv_2023")
    with pytest.raises(ValueError, match=r"to_rate\(rate=True\)"):
        t.to_rate(True)
    with pytest.raises(ValueError, match=r"take\(\).*0\.5.*integer"):
        t.take([0.5])
    assert len(t.take(np.array([0, 3]))) == 2


def test_an_empty_file_says_it_is_empty(tmp_path):
    p = _write(tmp_path, "empty.csv", "")
    with pytest.raises(ValueError, match=re.escape(f"trace file {str(p)!r} is empty (no header line)")):
        serving.read_trace(p)


def test_sampling_more_requests_than_the_trace_holds_is_refused():
    # drawn without replacement: 5,000 of 1,000 returned the whole trace at its own rate without a word
    t = traces.load_sample("azure_conv_2023")
    with pytest.raises(ValueError, match=r"sample\(n=5000\).*1000 requests"):
        t.sample(5000)
    assert t.sample(len(t)) == t
    a, b = t.sample(100, seed=3), t.sample(100, seed=3)
    assert a == b and a != t.sample(100, seed=4) and len(a) == 100


def test_a_frame_written_to_csv_reads_back_with_its_hash_blocks(tmp_path):
    # the dse layout is "what Trace.frame writes": written to CSV its hash_ids lists are text, "[0, 1, 2]",
    # which read_dse refused ("is not a list of integer block ids")
    t = traces.load_sample("mooncake_conversation").head(20)
    p = tmp_path / "frame.csv"
    t.frame().to_csv(p, index=False)
    assert serving.read_trace(p) == t
    bad = tmp_path / "bad.csv"
    bad.write_text('arrival_s,input_tokens,output_tokens,hash_ids\n0,600,5,"[0, 1]"\n1,600,5,"[0, x]"\n')
    with pytest.raises(ValueError, match=re.escape(f"trace file {str(bad)!r}, line 3, column 'hash_ids' (4)")):
        serving.read_trace(bad)
    bad.write_text('arrival_s,input_tokens,output_tokens,hash_ids\n0,600,5,"[0, 1]"\n1,600,5,"[0, -1]"\n')
    with pytest.raises(ValueError, match=re.escape(f"{str(bad)!r}, line 3, column 'hash_ids' (4): [0, -1] is not "
                                                   "a list of integer block ids >= 0")):
        serving.read_trace(bad)
    t64 = Trace(np.array([0.0, 1.0]), np.array([100, 100]), np.array([5, 5]), hash_ids=np.array([0, 1, 0, 2]),
                hash_offsets=np.array([0, 2, 4]), block_tokens=64)
    t64.frame().to_csv(p, index=False)
    assert traces.read_dse(p, block_tokens=64) == t64


# ---- helper u14d's pass ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("blank", ["\n", "   \n", "\t\n", "\r\n"])
def test_a_bad_cell_after_blank_lines_is_named_at_its_own_line(tmp_path, blank):
    # pandas skips empty and whitespace-only lines: the line named was the row's position + 2, one line short per
    # blank line above it (files joined with `cat`, spreadsheets saved with empty rows)
    p = _write(tmp_path, "gaps.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n"
               + blank + blank + "2023-11-16 18:15:47.0,396,109\n2023-11-16 18:15:48.0,-3,20\n")
    with pytest.raises(ValueError, match=re.escape(f"trace file {str(p)!r}, line 6, column 'ContextTokens' (2): -3 "
                                                   "is negative")):
        serving.read_trace(p)


def test_a_bad_cell_after_a_quoted_multiline_field_is_named_at_its_own_line(tmp_path):
    # a quoted field may span lines (BurstGPT's Model column written by a spreadsheet): the next row's line follows it
    p = _write(tmp_path, "bg.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
               '0,"Chat\nGPT",100,10,110,Conversation log\n\n1.5,GPT-4,,20,20,Conversation log\n')
    with pytest.raises(ValueError, match=re.escape(f"trace file {str(p)!r}, line 5, column 'Request tokens' (3): "
                                                   "non-numeric value (missing)")):
        serving.read_trace(p)


def test_blank_lines_before_the_header_and_in_a_gz_count_too(tmp_path):
    text = "\n\narrival_s,input_tokens,output_tokens\n0,100,10\n\n1,abc,5\n"
    for name, data in (("lead.csv", text), ("lead.csv.gz", gzip.compress(text.encode()))):
        p = _write(tmp_path, name, data)
        with pytest.raises(ValueError, match=re.escape(f"trace file {str(p)!r}, line 6, column 'input_tokens' (2): "
                                                       "non-numeric value 'abc'")):
            serving.read_trace(p)


def test_a_wide_row_after_blank_lines_before_the_header_is_counted_against_the_header(tmp_path):
    p = _write(tmp_path, "lead.csv", "\narrival_s,input_tokens,output_tokens\n0,100,10\n1,200,20,6\n")
    with pytest.raises(ValueError, match=re.escape(f"trace file {str(p)!r}, line 4: 4 fields, the header has 3")):
        serving.read_trace(p)
