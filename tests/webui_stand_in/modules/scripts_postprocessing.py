class PostprocessedImage:
    def __init__(self, image):
        self.image = image
        self.info = {}
        self.extra_images = []
        self.nametags = []
        self.disable_processing = False
        self.caption = None

    def create_copy(self, new_image, *, nametags=None, disable_processing=False):
        copy = PostprocessedImage(new_image)
        copy.nametags = self.nametags + list(nametags or [])
        copy.info = self.info.copy()
        copy.disable_processing = disable_processing
        return copy


class ScriptPostprocessing:
    filename = None
    controls = None
    args_from = None
    args_to = None
    order = 1000
    name = None
    group = None

    def ui(self):
        pass

    def process(self, pp: PostprocessedImage, **args):
        pass

    def process_firstpass(self, pp: PostprocessedImage, **args):
        pass

    def image_changed(self):
        pass
