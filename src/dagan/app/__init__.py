"""`dagan serve`: the web pages, the HTTP API and live webcam animation (FastAPI, no CDN, offline).

    options   form fields (named as the `dagan animate` flags) → AnimateOptions, and their OpenAPI schema
    models    the model registry: names → pipelines, loaded once through `dagan.assets.resolve_model`
    jobs      the job queue: per-model concurrency, a bounded queue, progress, cancellation, temp dirs
    live      one webcam session: face crop, keypoints relative to a neutral pose, generate
    auth      the optional token (bearer header, or a cookie set by the login form)
    server    the FastAPI app wiring all of the above; `static/` holds the pages' HTML, JS and CSS
"""
