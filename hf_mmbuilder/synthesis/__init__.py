"""Instruction synthesis: rule-based templates, the Oasis image-only pipeline with its model
backends, and the quality validation report.

Example:
    >>> from hf_mmbuilder.synthesis import write_instruction
    >>> write_instruction("A red bus.", None, "caption", "en", seed=0, key="x")[1]
    'A red bus.'
"""

from .report import QualityReport, quality_report
from .templates import INSTRUCTION_TYPES, LANGUAGES, TemplateInstructions, generate_template_instructions, plan_instructions, write_instruction

__all__ = [
    "INSTRUCTION_TYPES",
    "LANGUAGES",
    "QualityReport",
    "TemplateInstructions",
    "generate_template_instructions",
    "plan_instructions",
    "quality_report",
    "write_instruction",
]
