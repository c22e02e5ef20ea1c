callbacks_ui_settings = []
callbacks_app_started = []


def on_ui_settings(callback, *, name=None):
    callbacks_ui_settings.append(callback)


def on_app_started(callback, *, name=None):
    callbacks_app_started.append(callback)


def ui_settings_callback():
    for callback in callbacks_ui_settings:
        callback()


def app_started_callback(demo, app):
    for callback in callbacks_app_started:
        callback(demo, app)


def clear_callbacks():
    callbacks_ui_settings.clear()
    callbacks_app_started.clear()
