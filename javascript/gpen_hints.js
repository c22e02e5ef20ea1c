// Hover hints for GPEN's controls through the WebUI's `titles` table (hints.js).
// Only adds entries: nothing here looks for elements, so a missing Extras tab is harmless.
(function() {
    if (typeof titles === "undefined") return;
    Object.assign(titles, {
        "GPEN": "Restore faces with GPEN (GAN Prior Embedded Network)",
        "GPEN visibility": "How much of the result to show: 0 = the image as it was, 1 = only the result",
        "GPEN weight": "How much of the restored face to keep: 0 = the original face, 1 = fully restored",
        "GPEN model": "GPEN checkpoint: the 512 model suits most photos; 1024/2048 for large faces. Missing models are downloaded to models/GPEN on first use",
        "GPEN face selection": "Which faces to restore: all, only the largest, or only the one nearest the centre",
        "GPEN face detector": "RetinaFace ResNet-50 finds more faces; MobileNet-0.25 is lighter and faster",
        "GPEN detection confidence": "Faces detected with a lower confidence than this are left alone",
        "GPEN paste mask": "parsing: paste only the face itself (not hair or clothes); box: a feathered square around the face",
        "GPEN colour correction": "Give the restored face the original's overall colour, keeping the restored detail",
        "GPEN small-face smoothing": "Slightly smooth faces under 100 px, as the official pipeline does, to hide artefacts",
        "GPEN batch size": "Faces restored per network call: higher is faster on a GPU with enough memory",
        "GPEN precision": "auto: fp16 on CUDA (retried in fp32 if it fails), fp32 on the CPU",
        "GPEN in Extras API calls without GPEN arguments": "The Extras API passes no GPEN settings; when on, those calls restore faces with the settings here"
    });
})();
