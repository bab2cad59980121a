"""A task's templates over a row: Jinja (`{{ column }}`, as lm-evaluation-harness's doc_to_text) or
str.format (`{column}`), a mistake named with the row and its columns."""

from __future__ import annotations

from functools import lru_cache

from common.configfile import ConfigError


def render_template(template: str, row: dict, where: str, index: int, what: str = "prompt") -> str:
    """`{{ column }}` templates through Jinja (as lm-evaluation-harness's doc_to_text),
    `{column}` ones through str.format."""
    try:
        if "{{" in template or "{%" in template:
            return _jinja(template).render(**row)
        return template.format(**row)
    except KeyError as e:
        raise ConfigError(
            f"{where}: row {index}: the {what} names column {e}, which the row does not have; its columns: "
            f"{', '.join(row)}"
        ) from None
    except Exception as e:  # jinja2's UndefinedError / TemplateSyntaxError, format's IndexError/ValueError
        raise ConfigError(
            f"{where}: row {index}: the {what} template does not render: {e}; its columns: {', '.join(row)}"
        ) from None


@lru_cache(maxsize=64)
def _jinja(template: str):
    """Compiled once per template, not once per row."""
    import jinja2

    # a trailing newline is part of the prompt, as in lm-eval's doc_to_text
    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True).from_string(template)
