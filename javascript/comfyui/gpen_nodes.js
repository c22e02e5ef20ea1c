// ComfyUI only (the WebUI loads javascript/*.js, not this folder): GPEN's node inputs shown by
// the labels and marked advanced as the server describes them (gpen_ext/options.py, through
// INPUT_TYPES), which this frontend does not do by itself for a node pack's inputs.
import { app } from "../../scripts/app.js";

const CATEGORY = "image/restoration/GPEN";
const WIDTH = 320; // the labels and values side by side, uncut

app.registerExtension({
    name: "GPEN.nodes",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (nodeData.category !== CATEGORY) return;
        const specs = { ...nodeData.input?.required, ...nodeData.input?.optional };
        const created = nodeType.prototype.onNodeCreated;
        nodeType.prototype.onNodeCreated = function () {
            const result = created?.apply(this, arguments);
            for (const widget of this.widgets ?? []) {
                const options = specs[widget.name]?.[1] ?? {};
                if (options.display_name) widget.label = options.display_name;
                if (options.advanced) widget.advanced = true;
            }
            this.size[0] = Math.max(this.size[0], WIDTH);
            return result;
        };
    },
});
