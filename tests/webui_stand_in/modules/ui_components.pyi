import gradio as gr

from gradio.events import Dependency

class InputAccordion(gr.Checkbox):
    """A1111's accordion that is also a checkbox input (the real one adds JavaScript)."""

    def __init__(self, value, **kwargs):
        super().__init__(value, **{**kwargs, "visible": False})
        self.accordion = gr.Accordion(label=kwargs.get("label", "Accordion"), open=value)

    def __enter__(self):
        self.accordion.__enter__()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.accordion.__exit__(exc_type, exc_val, exc_tb)