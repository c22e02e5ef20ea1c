// Hover hints for GPEN's controls through the WebUI's `titles` table (hints.js). The texts
// come from the option descriptions (gpen_ext/options.py), which the Extras section puts on
// the page as JSON in a hidden element; nothing here repeats them.
onUiLoaded(function() {
    var holder = gradioApp().querySelector("[data-gpen-hints]");
    if (!holder || typeof titles === "undefined") return;
    try {
        Object.assign(titles, JSON.parse(holder.getAttribute("data-gpen-hints")));
    } catch (error) {
        console.warn("GPEN: hover hints not readable", error);
    }
});
