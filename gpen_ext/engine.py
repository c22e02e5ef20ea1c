"""Running a job: its files restored here, one after the other, or on a Ray cluster; and
`restore_files`, the command line's restore from Python.
"""

import sys

from .jobs import (EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, IMAGE, RestoreJob, UsageError,
                   check_tasks, plan_tasks, read_landmarks)
from .ray_jobs import expand_remote, finished_inputs, run_on_ray
from .results import face_tally
from .tasks import (Progress, Report, failure, open_restorer, restore_clip_file,
                    restore_image_file)


def restore_files(inputs, output, options=None, **flags):
    """The command line's restore from Python: `inputs` (files, folders, globs; URIs on Ray)
    into `output` (a file or a folder), with `options` (RestoreOptions; default: the
    defaults) and any other flag of `python -m gpen_ext restore` by its name (model="1024",
    overwrite=True, landmarks="faces.json", weight=0.8, ray="local" or "auto", ...).
    Returns the exit code (0 all restored, 1 some failed); a usage error raises UsageError,
    an unknown flag TypeError."""
    return run(RestoreJob.from_flags(inputs, output, options, **flags))


def run(job):
    """Restore the files of `job`; the exit code. Everything that can be checked is checked
    before any model is loaded or downloaded."""
    landmarks = read_landmarks(job.landmarks, job.faces_per_image) if job.landmarks else None
    if job.ray is not None:
        tasks = plan_tasks(job, expand_remote, finished_inputs(job))
        check_tasks(tasks, landmarks, job)
        return run_on_ray(tasks, job, landmarks)
    tasks = plan_tasks(job)
    check_tasks(tasks, landmarks, job)
    restorer = open_restorer(job, landmarks)
    report, progress = Report(), Progress(len(tasks))
    for task in tasks:
        try:
            if task.kind == IMAGE:
                faces = face_tally(restore_image_file(restorer, task, job, landmarks,
                                                      progress.faces(task.source.name)))
            else:
                faces = restore_clip_file(restorer, task, job, landmarks, progress)
            report.done(faces)
        except Exception as error:  # keep going with the other files, say what broke
            report.fail(task.source, failure(task.source, error))
        progress.file_done()
        if report.failed and job.fail_fast:
            break
    progress.close()
    print(report.summary(restorer.networks.substitutes()), file=sys.stderr)
    return EXIT_SOME_FAILED if report.failed else EXIT_OK


__all__ = ["EXIT_OK", "EXIT_SOME_FAILED", "EXIT_USAGE", "UsageError", "restore_files", "run"]
