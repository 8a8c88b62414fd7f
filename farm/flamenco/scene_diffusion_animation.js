// SPDX-License-Identifier: GPL-3.0-or-later
// A Flamenco custom job type (a documented example, not tested here: no Flamenco Manager runs in
// this repository's CI). Copy it into the Manager's `scripts/` folder and restart the Manager.
// One task per shot, running `blender -b FILE -c scene_diffusion animation --frames SHOT ...`;
// the frames of a shot stay in order on one Worker because each grows from the one before it.

const JOB_TYPE = {
  label: "Scene Diffusion Animation",
  settings: [
    { key: "shots", type: "string", required: true,
      description: "Frame ranges, one task each, comma-separated: what `-c scene_diffusion plan --for animation` prints, e.g. 1-24,25-48" },
    { key: "output_dir", type: "string", subtype: "dir_path", required: true,
      description: "The frames go to a folder named after the scene here" },
    { key: "options", type: "string", required: false,
      description: "More Scene Diffusion options, shell-quoted, e.g. --prompt 'a snowy street'" },
    { key: "blendfile", type: "string", required: true, visible: "web",
      description: "The .blend file, with its Scene Diffusion settings" },
  ],
};

function compileJob(job) {
  const settings = job.settings;
  for (const shot of settings.shots.split(",").map((text) => text.trim()).filter((text) => text)) {
    const task = author.Task(`shot-${shot}`, "blender");
    task.addCommand(author.Command("blender-render", {
      exe: "{blender}",
      exeArgs: "{blenderArgs}",
      argsBefore: [],
      blendfile: settings.blendfile,
      args: ["-c", "scene_diffusion", "animation", "--frames", shot, "--output", settings.output_dir,
             "--resume", "--set", "animation.video=false", "--options", settings.options || "", "--json"],
    }));
    job.addTask(task);
  }
}
