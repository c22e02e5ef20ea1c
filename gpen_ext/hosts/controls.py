"""Which gradio control shows each option, for every page built with gradio (the WebUI's and
the project's own), from the option's description alone. The gradio module is passed in: each
host brings its own version of it."""

from ..options import CHOICE, FACE_NUMBERS, FLAG, INTEGER, MODEL, NAMES
from ..registry import unmarked

FACE_NUMBERS_HINT = "e.g. 0, 2 (empty: every face)"


def control(gr, option, model_choices, **arguments):
    """The gradio component class and its arguments for `option`; `model_choices`: the model
    list as the host shows it."""
    if option is MODEL:
        return gr.Dropdown, {"choices": model_choices, **arguments}
    if option.kind == FLAG:
        return gr.Checkbox, arguments
    if option.kind == NAMES:
        return gr.CheckboxGroup, {"choices": list(option.choices), **arguments}
    if option.kind == FACE_NUMBERS:
        return gr.Textbox, {"placeholder": FACE_NUMBERS_HINT, "lines": 1, "max_lines": 1,
                            **arguments}
    if option.kind == CHOICE:
        shown = [option.choice_label(choice) for choice in option.choices]
        return gr.Dropdown if len(shown) > 2 else gr.Radio, {"choices": shown, **arguments}
    if option.kind == INTEGER and option.maximum - option.minimum > 100:
        # a slider over thousands makes small values unreachable: a number box
        return gr.Number, {"minimum": option.minimum, "maximum": option.maximum, "precision": 0,
                           **arguments}
    return gr.Slider, {"minimum": option.minimum, "maximum": option.maximum,
                       "step": option.step, **arguments}


def stored(option, value):
    """An option's value as a control holds it: face numbers as text, names as a list,
    choices by the names people read."""
    if option.kind == NAMES:
        return list(value)
    if option.kind == FACE_NUMBERS:
        return option.to_text(value)
    return option.choice_label(value) if option.kind == CHOICE else value


def parsed(option, value):
    """A control's value as the option takes it (None stays None)."""
    if value is None:
        return None
    if option.kind == NAMES:
        return tuple(value)
    if option.kind == FACE_NUMBERS:
        return option.from_text(value)
    if option.kind == INTEGER:
        return int(value) if float(value) == int(value) else value  # number boxes give floats
    if option is MODEL:
        return unmarked(value)
    if option.kind == CHOICE:
        return {option.choice_label(choice): choice for choice in option.choices}.get(value, value)
    return value
