"""vgg_tf.tables: the one plain-text table layout every command prints."""

from __future__ import annotations

import pytest

from vgg_tf import tables


def test_columns_are_as_wide_as_their_widest_cell_and_aligned_as_asked():
    text = tables.format_table(
        ["net", "parameters"], [["A-LRN", 132_863_336], ["E", "143,667,240"]], align="<>"
    )
    assert text.splitlines() == [
        "net     parameters",
        "A-LRN    132863336",
        "E      143,667,240",
    ]


def test_the_rule_spans_the_table_and_no_line_ends_in_spaces():
    text = tables.format_table(
        ["protocol", "Q"], [["dense", "256,384,512"], ["single", ""]], rule=True
    )
    header, rule, *rows = text.splitlines()
    assert rule == "-" * len("protocol  256,384,512")
    assert rows == ["dense     256,384,512", "single"]
    assert header == "protocol  Q"


def test_a_header_alone_when_there_are_no_rows():
    assert tables.format_table(["trial", "status"], []) == "trial  status"


@pytest.mark.parametrize(
    "rows, align, message",
    [
        ([["a"]], None, r"A row of 1 cells \['a'\] is not accepted; expected 2"),
        ([["a", "b"]], "<", r"align='<' is not accepted; expected one of < > per column \(2"),
        ([["a", "b"]], "<^", r"align='<\^' is not accepted"),
    ],
)
def test_rows_and_alignments_of_another_shape_are_refused(rows, align, message):
    with pytest.raises(ValueError, match=message):
        tables.format_table(["x", "y"], rows, align=align)
