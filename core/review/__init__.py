"""Safety review of generated code: static AST analysis plus an LLM verdict, combined per safety mode."""

from core.review.reviewer import Reviewer
from core.review.static import analyse

__all__ = ["Reviewer", "analyse"]
