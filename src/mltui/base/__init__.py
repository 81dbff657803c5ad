"""The floor: errors, values, ids, text and process helpers. Standard library only; imports nothing of mltui."""
