// ComfyUI only (the WebUI loads javascript/*.js, not this folder): GPEN's node inputs shown by
// the labels and marked advanced as the server describes them (gpen_ext/options.py, through
// INPUT_TYPES), which this frontend does not do by itself for a node pack's inputs.
import { app } from "../../scripts/app.js";

const CATEGORY = "image/restoration/GPEN";
const WIDTH = 320; // the labels and values side by side, uncut
const CHARACTER = 7; // the widgets' font, about this wide a character
const PADDING = 70; // a widget's arrows, margins and the gap between label and value

// Wide enough for every label beside its longest value: a combo's longest choice (e.g. a
// release marked "downloaded on first use") would otherwise hide the label.
function widthFor(widgets) {
    const longest = widgets.map((widget) => {
        const values = widget.options?.values;
        const value = Array.isArray(values) ? Math.max(...values.map((v) => String(v).length)) : 0;
        return (widget.label ?? widget.name).length + value;
    });
    return Math.max(WIDTH, CHARACTER * Math.max(0, ...longest) + PADDING);
}

// An advanced input, shown by the node's "Show Advanced". This frontend (1.27) lays out and
// makes room for hidden widgets too, which left a Restore Faces node 330 px of empty space:
// while hidden, the widget takes no height.
function hideUnlessAdvanced(node, widget) {
    widget.advanced = true;
    widget.computeSize = (width) => [width, node.showAdvanced ? LiteGraph.NODE_WIDGET_HEIGHT : -4];
}

app.registerExtension({
    name: "GPEN.nodes",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (nodeData.category !== CATEGORY) return;
        const specs = { ...nodeData.input?.required, ...nodeData.input?.optional };
        const created = nodeType.prototype.onNodeCreated;
        nodeType.prototype.onNodeCreated = function () {
            const result = created?.apply(this, arguments);
            const widgets = this.widgets ?? [];
            for (const widget of widgets) {
                const options = specs[widget.name]?.[1] ?? {};
                if (options.display_name) widget.label = options.display_name;
                if (options.advanced) hideUnlessAdvanced(this, widget);
            }
            // sized afresh: the node was sized with the advanced widgets shown
            this.setSize([Math.max(this.size[0], widthFor(widgets)), this.computeSize()[1]]);
            return result;
        };
    },
});
