"""Plain-text tables: a header and rows in fixed-width columns.

Every table a command prints (``bin/evaluate``'s error tables, ``bin/tune``'s
trials, ``vgg-summary``'s networks) is laid out by :func:`format_table`, so they
all look alike: columns as wide as their widest cell, two spaces apart, no
trailing spaces. Each caller chooses its own columns and how to show its values.

Example:
    >>> print(format_table(["net", "parameters"], [["A", "132,863,336"], ["E", "143,667,240"]],
    ...                    align="<>", rule=True))
    net   parameters
    ----------------
    A    132,863,336
    E    143,667,240
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: Left and right alignment, one character per column of ``align``.
ALIGNMENTS = ("<", ">")
COLUMN_GAP = "  "


def format_table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    align: str | None = None,
    rule: bool = False,
) -> str:
    """The rows under the header in fixed-width columns, as one string.

    Args:
        header: The column names.
        rows: One sequence of cells per row, as many as ``header``; each cell is
            shown as ``str(cell)``.
        align: One character per column, ``"<"`` (left) or ``">"`` (right);
            default: every column left-aligned.
        rule: Underline the header with dashes across the table.

    Returns:
        The lines joined by newlines (no trailing newline, no trailing spaces).

    Raises:
        ValueError: A row or ``align`` of another length than ``header``, or an
            ``align`` character other than ``<`` and ``>``.

    Example:
        >>> print(format_table(["trial", "status"], [["0", "COMPLETED"], ["1", "FAILED"]]))
        trial  status
        0      COMPLETED
        1      FAILED
    """
    header = [str(name) for name in header]
    align = "<" * len(header) if align is None else align
    if len(align) != len(header) or any(a not in ALIGNMENTS for a in align):
        raise ValueError(
            f"align={align!r} is not accepted; expected one of {' '.join(ALIGNMENTS)} per "
            f"column ({len(header)} columns)."
        )
    cells = [[str(cell) for cell in row] for row in rows]
    for row in cells:
        if len(row) != len(header):
            raise ValueError(
                f"A row of {len(row)} cells {row} is not accepted; expected {len(header)}, "
                f"one per column of {header}."
            )
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        return COLUMN_GAP.join(
            value.ljust(width) if a == "<" else value.rjust(width)
            for value, width, a in zip(values, widths, align)
        ).rstrip()

    lines = [line(header)]
    if rule:
        lines.append("-" * (sum(widths) + len(COLUMN_GAP) * (len(widths) - 1)))
    return "\n".join(lines + [line(row) for row in cells])
