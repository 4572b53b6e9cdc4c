"""The screenshots in this folder, from real playground runs of its presets (in Chromium, through
playwright): ``python docs/playground/screenshots.py docs/playground [race vanishing exploding
clipping]``.  Each preset is clicked, trained until its run(s) pass a number of updates, paused,
and photographed; each run's title is printed.  The runs train at whatever speed the machine
gives, so the update counts (and with them the pictures) differ a little from one call to the
next."""
import os
import re
import shutil
import sys
import time

from playwright.sync_api import sync_playwright

import viz


def run_to(page, updates, runs=1):
    """Wait until ``runs`` runs show at least ``updates`` updates (at most 15 minutes), pause."""
    deadline = time.time() + 900
    while time.time() < deadline:
        titles = page.locator(".run-title").all_text_contents()
        counts = [int(m.group(1)) for t in titles for m in [re.search(r"update (\d+)", t)] if m]
        if len(counts) >= runs and min(counts) >= updates:
            break
        time.sleep(0.5)
    page.click("#b-pause")
    time.sleep(4)      # the views refresh every few seconds of CPU time: let the last one land
    print(page.locator(".run-title").all_text_contents(), flush=True)


def shot(out, preset, updates, runs, width, height, takes, scale=1):
    app = viz.playground()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"))
            page = browser.new_page(viewport={"width": width, "height": height},
                                    device_scale_factor=scale)
            page.goto(app.url)
            page.wait_for_selector(".run-title")     # the first snapshot drawn: the handlers are on
            page.click("#p-" + preset)
            run_to(page, updates, runs)
            for name, take in takes:
                take(page, os.path.join(out, name))
            browser.close()
    finally:
        app.stop()


def panels_of_row(index, panels):
    """The first ``panels`` panels of the first run's row ``index``, 3 px around them."""
    def take(page, path):
        row = page.locator(".run .row").nth(index)
        box = row.bounding_box()
        right = max(b["x"] + b["width"]
                    for b in (row.locator(".panel").nth(i).bounding_box() for i in range(panels)))
        page.screenshot(path=path, full_page=True,
                        clip={"x": box["x"] - 3, "y": box["y"] - 3,
                              "width": right - box["x"] + 6, "height": box["height"] + 6})
    return take


def titles_to(selector):
    """The whole width from the run titles down to the first ``selector``."""
    def take(page, path):
        top = page.locator(".run-title").first.bounding_box()
        bottom = page.locator(selector).first.bounding_box()
        page.screenshot(path=path, full_page=True,
                        clip={"x": 0, "y": top["y"] - 6, "width": page.viewport_size["width"],
                              "height": bottom["y"] + bottom["height"] - top["y"] + 12})
    return take


def main(out, which):
    if "race" in which:          # a 1600 x 1100 window at 3/4 scale: the two runs side by side
        shot(out, "race", 1500, 2, 1600, 1100,
             [("playground.png", lambda page, path: page.screenshot(path=path)),
              ("race_recall.png", titles_to(".recall-panel"))], scale=0.75)
    if "vanishing" in which:
        shot(out, "vanishing", 300, 1, 1200, 900, [("vanishing_heatmap.png", panels_of_row(1, 3))])
    if "exploding" in which:
        shot(out, "exploding", 240, 1, 1200, 900,
             [("exploding_gradient_norm.png", panels_of_row(0, 2))])
    if "clipping" in which:
        shot(out, "clipping", 200, 1, 1200, 900,
             [("clipping_gradient_norm.png", panels_of_row(0, 2))])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["race", "vanishing", "exploding", "clipping"])
