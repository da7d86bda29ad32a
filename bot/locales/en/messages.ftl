## Commands (setMyCommands and /help)
cmd-start = Start and show the menu
cmd-help = What the bot can do
cmd-imagine = Text to image
cmd-mix = Mix two images
cmd-blend = Mix an image and a text
cmd-variations = Variations of a photo
cmd-sticker = Make a sticker
cmd-depth = Keep the shapes, change the look
cmd-settings = Style, aspect ratio, language…
cmd-cancel = Leave a dialog or cancel your jobs

start-greeting =
    Hi, { $name }! I draw pictures with Kandinsky 2.2.
    Send me a text and I will turn it into an image, or pick a mode below.
help-text =
    <b>What I can do</b>
    /imagine — text to image (or just send me a text)
    /mix — mix two images (send two photos, an album works)
    /blend — mix an image and a text (a photo with a caption works)
    /variations — variations of a photo
    /sticker — make a sticker with a transparent background
    /depth — keep the shapes of a photo, change its look
    /settings — style, aspect ratio, number of images, negative prompt, language
    /cancel — leave a dialog or cancel your queued jobs
    /help — this message

## Menu buttons
btn-imagine = 🎨 Text to image
btn-mix = 🔀 Mix two images
btn-blend = 🖼 Image + text
btn-variations = 🔁 Variations
btn-sticker = 🏷 Sticker
btn-depth = 🗿 Keep depth
btn-settings = ⚙️ Settings
btn-cancel = ✖️ Cancel

## Dialogs
ask-prompt = What should I draw? Send me a description.
ask-sticker-prompt = What should the sticker show? Send me a description.
mix-ask-first = Send me two photos to mix (one by one or as an album).
mix-ask-second = Got it. Now send the second photo.
blend-ask-photo = Send me a photo (you can add the text as a caption).
blend-ask-text = Now the text: what should I mix into this photo?
blend-ask-photo-after-text = Now send the photo to mix with this text.
variations-ask-photo = Send me a photo and I will draw variations of it.
depth-ask-photo = Send me a photo; I will keep its shapes (add the new look as a caption).
depth-ask-text = Now the text: what should the photo look like?
weights-hint = Weights: { $first }% / { $second }%. Change them with the buttons.
weights-set = Weights set to { $first }% / { $second }%.
need-photo = I need a photo here (or an image file). Send /cancel to leave.
need-text = I need a text here. Send /cancel to leave.
photo-outside-dialog = What should I do with this photo? Pick a mode first:
dialog-cancelled = Cancelled. Send me a text or pick a mode.
nothing-to-cancel = There is nothing to cancel.
jobs-cancelled = { $count ->
    [one] Cancelled one job.
   *[other] Cancelled { $count } jobs.
}

## Queue and progress
queued = Your request is in the queue, position { $position }.
queued-eta = Your request is in the queue, position { $position } (about { $eta } s).
queued-now = Your request is being drawn now.
too-many-jobs = You already have { $limit } requests in progress. Please wait for one to finish.
status-progress = Drawing… { $stage }: { $step }/{ $total }
status-waiting = Waiting in the queue…
btn-cancel-job = ✖️ Cancel
job-cancel-stopping = Stopping this job…
job-cancel-removed = Removed from the queue.
job-cancel-not-found = This job is no longer known.
job-already-finished = This job has already finished.
not-yours = This button belongs to someone else's request.
job-cancelled = The request was cancelled.

## Results
result-caption =
    <b>{ $mode }</b>{ $prompt }
    Seed: <code>{ $seed }</code> · { $style } · { $aspect } ({ $width }×{ $height })
result-buttons = Buttons for each image, by its number:
status-done = Done.
btn-again = 🔄 Again
btn-variations-of = 🔁 Variations
btn-same-seed = 🎯 Same seed
btn-file = 📎 Full size
btn-add-to-pack = ➕ Add to my pack
result-expired = This result has expired; please make a new one.
input-expired = The source of this result has expired; please start again.

## Mode names
mode-text2image = Text to image
mode-mix = Mix
mode-blend = Image + text
mode-variations = Variations
mode-sticker = Sticker
mode-depth = Keep depth
mode-inpaint = Inpainting
mode-outpaint = Outpainting

## Failures
failed-bad_spec = Sorry, this request could not be run.
failed-input_expired = Your photo expired before its turn came. Please send it again.
failed-bad_input = Sorry, I could not read the image you sent.
failed-timeout = Sorry, drawing took too long and was stopped. Please try again.
failed-engine_error = Sorry, something went wrong while drawing. Please try again.
failed-worker_lost = Sorry, the drawing machine stopped. Please try again.
error-generic = Sorry, something went wrong. Please try again.

## Input checks
input-too-large = This file is too large: the limit is { $limit_mb } MB.
input-not-image = This does not look like an image. Please send a photo or a JPEG/PNG/WEBP file.
input-unsupported-format = Images in { $format } format are not supported. Please send JPEG, PNG or WEBP.
input-too-many-pixels = This image has too many pixels (limit { $limit_mp } megapixels).
input-animated = Animated images are not supported. Please send a still image.
input-corrupt = This image seems to be damaged. Please send another one.
input-download-failed = I could not download this file. Please send it again.
prompt-empty = The description is empty. Please tell me what to draw.
prompt-too-long = The description is too long: { $length } characters, the limit is { $limit }.

## Settings
settings-title =
    <b>Settings</b>
    Style: { $style }
    Aspect ratio: { $aspect }
    Images per request: { $count }
    Negative prompt: { $negative }
    Language: { $language }
settings-none = —
settings-btn-style = Style
settings-btn-aspect = Aspect ratio
settings-btn-count = Images
settings-btn-negative = Negative prompt
settings-btn-language = Language
settings-btn-close = Done
settings-btn-back = « Back
settings-btn-negative-clear = Clear negative prompt
settings-pick-style = Pick a style:
settings-pick-aspect = Pick an aspect ratio:
settings-pick-count = How many images per request?
settings-pick-language = Pick a language:
settings-ask-negative = Send me what should NOT be in the pictures (or clear it with the button).
settings-negative-saved = Negative prompt saved.
settings-saved = Saved.
settings-closed = Settings saved.
style-none = None
style-artstation = Artstation
style-4k = 4k
style-anime = Anime
language-auto = from Telegram
language-en = English
language-ru = Русский
