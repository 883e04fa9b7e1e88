"""Input highlighting: SQL through Pygments (prompt_toolkit's PygmentsLexer), the command
word of other commands in bold, unknown command words in red."""

from __future__ import annotations

from typing import Callable

from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.lexers import Lexer, PygmentsLexer
from prompt_toolkit.styles import Style, merge_styles, style_from_pygments_cls
from pygments.lexers.sql import SqlLexer
from pygments.styles import get_style_by_name

from osvtrace.shell.commands import ALIASES, COMMANDS, SQL_STARTS

STYLE = merge_styles([
    style_from_pygments_cls(get_style_by_name("default")),
    Style.from_dict({
        "command": "bold",
        "command.unknown": "fg:ansired bold",
        "prompt": "fg:ansicyan",
        "prompt.filters": "fg:ansiyellow",
    }),
])


class ShellLexer(Lexer):
    """`sql ...` and bare SELECT/WITH queries are lexed as SQL; other lines get their command word marked."""

    def __init__(self) -> None:
        self.sql = PygmentsLexer(SqlLexer)

    def lex_document(self, document: Document) -> Callable[[int], StyleAndTextTuples]:
        text = document.text
        lead = len(text) - len(text.lstrip())
        word = text[lead:].split(None, 1)[0] if text.strip() else ""
        key = word.lower()
        is_sql = key in SQL_STARTS or ALIASES.get(key, key) == "sql"
        if is_sql:
            sql_lines = self.sql.lex_document(document)
            if key in SQL_STARTS:
                return sql_lines

            def get_sql_line(n: int) -> StyleAndTextTuples:
                frags = sql_lines(n)
                if n:
                    return frags
                return _mark_first_word(frags, lead, len(word), "class:command")
            return get_sql_line
        known = ALIASES.get(key, key) in COMMANDS
        lines = document.lines

        def get_line(n: int) -> StyleAndTextTuples:
            line = lines[n]
            if n or not word:
                return [("", line)]
            style = "class:command" if known else "class:command.unknown"
            return [("", line[:lead]), (style, line[lead:lead + len(word)]), ("", line[lead + len(word):])]
        return get_line


def _mark_first_word(frags: StyleAndTextTuples, start: int, length: int, style: str) -> StyleAndTextTuples:
    """Restyle characters [start, start+length) of a line's fragments."""
    out: StyleAndTextTuples = []
    pos = 0
    for f in frags:
        st, tx = f[0], f[1]
        for ch in tx:
            out.append((style if start <= pos < start + length else st, ch))
            pos += 1
    return out
