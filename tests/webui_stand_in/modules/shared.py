import argparse

face_restorers = []
cmd_opts = argparse.Namespace(use_cpu=[], gpen_models_path=None, api=True, api_auth=None)


class OptionInfo:
    def __init__(self, default=None, label="", component=None, component_args=None, onchange=None,
                 section=None, refresh=None, comment_before='', comment_after='', infotext=None,
                 restrict_api=False, category_id=None):
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.section = section
        self.category_id = category_id
        self.comment_after = comment_after

    def info(self, info):
        self.comment_after += f"<span class='info'>({info})</span>"
        return self


class OptionHTML(OptionInfo):
    def __init__(self, text):
        super().__init__(str(text).strip(), label="")
        self.do_not_save = True


class State:
    """The host's progress and Interrupt (modules.shared_state.State), as Extras sets it."""

    def __init__(self):
        self.interrupted = self.stopping_generation = self.skipped = False
        self.job_no = self.job_count = self.sampling_step = self.sampling_steps = 0
        self.textinfo = None
        self.seen = []  # (progress as the host computes it, textinfo) at each report

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name == "textinfo" and value and hasattr(self, "seen"):
            progress = self.job_no / self.job_count if self.job_count else 0
            if self.sampling_steps and self.job_count:
                progress += self.sampling_step / self.sampling_steps / self.job_count
            self.seen.append((min(progress, 1), value))


class Options:
    def __init__(self):
        object.__setattr__(self, "data", {"face_restoration_model": "CodeFormer",
                                          "face_restoration_unload": False})
        object.__setattr__(self, "data_labels", {})

    def add_option(self, key, info):
        self.data_labels[key] = info
        self.data.setdefault(key, info.default)

    def __getattr__(self, item):
        if item in self.data:
            return self.data[item]
        if item in self.data_labels:
            return self.data_labels[item].default
        raise AttributeError(item)

    def __setattr__(self, key, value):
        self.data[key] = value


opts = Options()
state = State()
