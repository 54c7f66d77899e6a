"""The page (Gradio Blocks): drop photos and videos, choose the model and options, follow the jobs, compare and
download the results. Every handler is a thin call into :class:`vidrestore.app.service.Service`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .engine import CHOICES, CODEFORMER_NOTE, Settings
from .jobs import DONE
from .service import Service

HEADERS = ["job", "file", "kind", "status", "frames", "s/frame", "ETA"]
INTRO = (
    "# vidrestore\nDrop old photos and films (or a whole folder). Faces are restored; the files you drop are "
    "copied into the work folder and never changed."
)


def _paths(*groups: Any) -> list[str]:
    out: list[str] = []
    for group in groups:
        for item in group or []:
            out.append(item if isinstance(item, str) else getattr(item, "name", str(item)))
    return out


def _model_help(service: Service, model: str, upscale: int) -> tuple[Any, Any, str]:
    import gradio as gr

    codeformer = model == "codeformer"
    missing = service.models.missing(Settings(model=model, upscale=int(upscale)))
    note = "" if not missing else f"**Weights missing — nothing can run until they are in place:** {missing}"
    return gr.update(visible=codeformer), gr.update(visible=codeformer), note


def _table(service: Service) -> list[list[Any]]:
    return [job.row() for job in reversed(service.jobs())]


def _finished(service: Service) -> list[tuple[str, str]]:
    return [(f"{j.name} ({j.id})", j.id) for j in reversed(service.jobs()) if j.status == DONE]


def _show(service: Service, job_id: str | None) -> tuple[Any, Any, Any]:
    import gradio as gr

    job = service.job(job_id)
    if job is None or job.status != DONE:
        return gr.update(visible=False, value=None), gr.update(visible=False, value=None), None
    files = service.files(job)
    out = str(files["output"]) if files["output"] else None
    if job.kind == "photo" and files["input"] and out:
        return gr.update(visible=True, value=(str(files["input"]), out)), gr.update(visible=False, value=None), out
    compare = str(files["compare"]) if files["compare"] else None
    return gr.update(visible=False, value=None), gr.update(visible=compare is not None, value=compare), out


def build_page(service: Service):
    import gradio as gr

    with gr.Blocks(title="vidrestore", delete_cache=(3600, 86400)) as page:  # served copies: a day
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=3):
                files = gr.File(label="Photos and videos", file_count="multiple", type="filepath", elem_id="files")
                folder = gr.File(label="…or a folder", file_count="directory", type="filepath", elem_id="folder")
            with gr.Column(scale=2):
                model = gr.Radio(choices=list(CHOICES), value="gfpgan-1.4", label="Model", elem_id="model")
                fidelity = gr.Slider(0, 1, value=0.5, step=0.05, visible=False, elem_id="fidelity",
                                     label="CodeFormer fidelity (0: most restored, 1: closest to the original)")
                licence = gr.Markdown(CODEFORMER_NOTE, visible=False, elem_id="licence")
                strength = gr.Slider(0, 1, value=1.0, step=0.05, label="Strength (blend with the original)")
                upscale = gr.Radio(choices=[1, 2, 4], value=1, label="Upscale")
                vhs = gr.Checkbox(label="VHS tape (videos: deinterlace when interlaced, light denoise)", value=False)
                weights = gr.Markdown(elem_id="weights")
                go = gr.Button("Restore", variant="primary", elem_id="restore")
        message = gr.Markdown(elem_id="message")
        table = gr.Dataframe(headers=HEADERS, value=lambda: _table(service), interactive=False, elem_id="jobs",
                             label="Jobs")
        with gr.Row():
            pick = gr.Dropdown(choices=_finished(service), value=None, label="Show a finished job", elem_id="pick")
            zip_button = gr.Button("Download all results as a zip", elem_id="zip")
        slider = gr.ImageSlider(label="Before / after", type="filepath", visible=False, elem_id="slider")
        compare = gr.Video(label="Before | after", visible=False, elem_id="compare")
        result = gr.File(label="Download the result", elem_id="result")
        bundle = gr.File(label="All results", elem_id="bundle")

        def on_model(m, up):
            return _model_help(service, m, up)

        def on_submit(dropped, dropped_folder, m, fid, st, up, tape):
            paths = _paths(dropped, dropped_folder)
            if not paths:
                return "Drop a photo or a video first.", _table(service), gr.update(), None, None
            settings = Settings(model=m, fidelity=float(fid), strength=float(st), upscale=int(up), vhs=tape)
            jobs, refused = service.submit(paths, settings)
            lines = [f"Queued {len(jobs)} file(s)." if jobs else "Nothing was queued."]
            lines += [f"- Refused: {r}" for r in refused]
            return "\n".join(lines), _table(service), gr.update(choices=_finished(service)), None, None

        def on_tick(shown):
            # only what changed is sent: a re-sent dropdown would close under the user's pointer
            rows, choices = _table(service), _finished(service)
            if shown == [rows, choices]:
                return gr.skip(), gr.skip(), gr.skip()
            same = shown is not None and shown[1] == choices
            return rows, gr.skip() if same else gr.update(choices=choices), [rows, choices]

        model.change(on_model, [model, upscale], [fidelity, licence, weights])
        upscale.change(on_model, [model, upscale], [fidelity, licence, weights])
        page.load(on_model, [model, upscale], [fidelity, licence, weights])
        go.click(on_submit, [files, folder, model, fidelity, strength, upscale, vhs],
                 [message, table, pick, files, folder], api_name="submit")
        shown = gr.State(None)
        gr.Timer(1.0).tick(on_tick, [shown], [table, pick, shown], show_progress="hidden")
        pick.change(lambda j: _show(service, j), [pick], [slider, compare, result], api_name="show")
        def on_zip():
            bundle_path = service.zip_results()
            return str(bundle_path) if bundle_path else None

        zip_button.click(on_zip, None, [bundle], api_name="zip")
    return page


def upload_dir(workdir: Path) -> Path:
    """Where Gradio keeps uploads while they are checked: inside the work folder."""
    return workdir / "uploads"
