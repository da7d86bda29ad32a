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
cmd-model = Kandinsky 2.2 or 3.0
cmd-cancel = Leave a dialog or cancel your jobs
cmd-packs = Your sticker packs

start-greeting =
    Hi, { $name }! I draw pictures with Kandinsky 2.2.
    Send me a text and I will turn it into an image, or pick a mode below.
help-text =
    <b>What I can do</b>
    /imagine — text to image (or just send me a text, in any language, or a voice message)
    /mix — mix two images (send two photos, an album works)
    /blend — mix an image and a text (a photo with a caption works)
    /variations — variations of a photo
    /sticker — make a sticker with a transparent background
    /packs — your sticker packs: links, new pack, rename, remove a sticker
    /depth — keep the shapes of a photo, change its look
    /animate — a short animation of a prompt: camera moves, several prompts by second
    /video — a 5-second video of a prompt (Kandinsky 5.0 Video; English or Russian)
    /edit — change part of a photo: what to change, and into what (or paint it under a result)
    /settings — style, aspect ratio, number of images, negative prompt, language
    /model — which model draws your pictures: Kandinsky 2.2, Kandinsky 3.0, SDXL or Kandinsky 5.0 Image
    /cancel — leave a dialog or cancel your queued jobs
    /start — start over and show the menu
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

## Dialogs (a mode's keys: <command>-ask-…, listed by contract.modes.ModeDescription.text_keys)
imagine-ask-prompt = What should I draw? Send me a description.
sticker-ask-prompt = What should the sticker show? Send me a description.
mix-ask-photo = Send me two photos to mix (one by one or as an album).
mix-ask-next-photo = Got it. Now send the second photo.
blend-ask-photo = Send me a photo (you can add the text as a caption).
blend-ask-text = Now the text: what should I mix into this photo?
blend-ask-photo-after-text = Now send the photo to mix with this text.
variations-ask-photo = Send me a photo and I will draw variations of it.
depth-ask-photo = Send me a photo; I will keep its shapes (add the new look as a caption).
depth-ask-photo-after-text = { depth-ask-photo }
depth-ask-text = Now the text: what should the photo look like?
weights-hint = Weights: { $first }% / { $second }%. Change them with the buttons.
weights-set = Weights set to { $first }% / { $second }%.
need-photo = I need a photo here (or an image file). Send /cancel to leave.
need-text = I need a text here. Send /cancel to leave.
photo-outside-dialog = What should I do with this photo? Pick a mode first:
unknown-command = I don't know this command. /help lists what I can do, or pick a mode:
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
queued-no-worker = No { $model } worker is running right now: your request waits and starts as soon as one is.
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
result-model = Model: { $model }
result-prompt-cut = ✂️ Your prompt was longer than { $model } reads ({ $tokens } tokens): the end was cut.
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
settings-btn-model = Model
settings-model = Model: { $model }
settings-btn-loras = 🎨 LoRA styles
settings-loras = LoRA styles: { $styles }
settings-pick-loras = LoRA styles for { $model }: tap one to turn it on or off (up to { $limit } at once); − and + change its weight.
settings-loras-none = No LoRA styles for { $model } on this bot right now (the operator adds them).
settings-loras-too-many = At most { $limit } LoRA styles at once. Turn one off first.
caption-loras = 🎨 LoRA: { $styles }
model-current = <b>Model</b>: { $model }
model-lacks = { $model } cannot do: { $modes }.
model-pick = Pick the model that draws your requests:
model-saved = { $model } it is
model-mode-refused = { $model } cannot do “{ $mode }” — { $other } can. Your choice of model stays; run just this one with { $other }?
weighting-unbalanced = The weights in your prompt have unbalanced brackets ({ $detail }). Write them as <code>(red car:1.4)</code> and close every bracket.
weighting-weight = A weight in your prompt is out of range ({ $detail }). Weights go from 0 to 2: <code>(fog:0.6)</code>, <code>(red car:1.4)</code>, <code>word++</code>.
btn-switch-once = ▶️ Draw this one with { $other }
switch-expired = This offer has expired; please send the request again.
switch-running = Drawing it with { $model }
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

## Quotas, bans, maintenance (issue 5)
quota-banned = You cannot use this bot.
quota-maintenance = 🛠 The bot is under maintenance right now, new requests are paused. Jobs already running will finish. Please try again a little later.
quota-per-minute = ⏳ Too many requests: { $limit } per minute. Next free slot at { $time } UTC (in { $seconds } s).
quota-per-day = ⏳ You have used all { $limit } requests for today. Next free slot at { $time } UTC.
quota-backlog = 🚦 The queue for this model is full right now ({ $waiting } requests are waiting). Please try again in a few minutes; nothing was counted.
quota-inflight = ⏳ You already have { $limit } jobs in progress. Send the next request when one of them is done.

## Sticker packs (issue 5)
pack-not-yours = This button belongs to someone else.
pack-result-expired = This sticker is no longer available. Generate it again to add it to a pack.
pack-pick-emoji = Pick an emoji for the sticker:
pack-btn-default-emoji = { $emoji } Default
pack-default-title = { $name }'s Kandinsky stickers { $n }
pack-created = New pack «{ $title }» created with this sticker: { $link }
    { $count }/{ $limit } stickers, { $left } places left. Manage your packs: /packs
pack-added = Added to «{ $title }»: { $link }
    { $count }/{ $limit } stickers, { $left } places left.
pack-already-added = This sticker is already in «{ $title }»: { $link }
pack-line = { $n }. { $current ->
        [yes] ★{" "}
       *[no] {""}
    }<a href="{ $link }">{ $title }</a> — { $count }/{ $limit }, { $left } places left
packs-empty = You have no sticker packs yet. Make a sticker with /sticker and press “Add to my pack” under it.
packs-header = <b>Your sticker packs ({ $count })</b> — ★ receives new stickers
pack-btn-open = ⚙️ { $n }. { $title }
pack-btn-new = ➕ Start a new pack
pack-btn-use = ★ Add new stickers here
pack-btn-rename = ✏️ Rename
pack-btn-remove = 🗑 Remove a sticker
pack-btn-back = « Back
pack-next-new = Your next sticker will start a new pack.
pack-now-current = New stickers will go to «{ $title }».
pack-ask-title = Send me the new title for «{ $title }» (1-64 characters).
pack-ask-sticker = Send me the sticker to remove from «{ $title }».
pack-ask-sticker-again = Please send a sticker from the pack (or /cancel).
pack-renamed = Renamed to «{ $title }»: { $link }
pack-removed = Sticker removed from «{ $title }»: { $count }/{ $limit } stickers, { $left } places left.
pack-sticker-not-in-pack = That sticker is not from this pack.
pack-sticker-not-found = That sticker is not in the pack any more.
pack-not-found = This pack is not in your list any more. Open /packs again.
pack-gone = The pack «{ $title }» was deleted in Telegram; I removed it from your list.
pack-full = The pack «{ $title }» is full (120 stickers).
pack-title-invalid = A title must be 1-{ $limit } characters. Send another one.
pack-file-rejected = Telegram did not accept this image as a sticker. Try generating it again.
pack-busy = Your pack is being updated, please try again in a moment.
pack-names-exhausted = I could not find a free name for a new pack. Please try again later.
pack-start-bot-first = To make your own sticker pack, open a private chat with me and press Start, then try again.

## Admin commands (issue 5)
admin-stats-header = <b>Stats</b>
admin-stats-users = Users: { $total } in total, { $today } active today
admin-stats-jobs = Jobs: { $today } today, { $total } in total; failed { $failed_today } today, { $failed_total } in total
admin-stats-queue = Queue depth: { $depth }
admin-stats-mode = { $mode }: { $today } today, { $total } total, failed { $failed_today }/{ $failed_total }, median { $median }, p95 { $p95 }
admin-stats-family = { $model }: { $today } today, { $total } total, failed { $failed_today }/{ $failed_total }
admin-queue-header = <b>Queue</b>
admin-queue-line = { $queue }: { $waiting } waiting, { $running } running
admin-queue-oldest = Oldest wait: { $wait }
admin-workers-none = No live workers.
admin-workers-header = <b>Workers ({ $count })</b>
admin-workers-line = { $name } on { $host } ({ $device }; { $families }): { $state }, job { $job }, { $done } done, { $failed } failed, heartbeat { $beat } ago
admin-workers-styles = ↳ LoRA styles: { $styles }; refused at start: { $refused } (why: the worker's log)
admin-btn-refresh = 🔄 Refresh
admin-ban-usage = Usage: /ban &lt;user id&gt;
admin-unban-usage = Usage: /unban &lt;user id&gt;
admin-ban-admin = Admins cannot be banned.
admin-banned = User { $id } is banned.
admin-already-banned = User { $id } was already banned.
admin-unbanned = User { $id } is unbanned.
admin-not-banned = User { $id } was not banned.
admin-limits-usage = Usage: /limits [&lt;user id&gt; [&lt;per minute&gt; &lt;per day&gt; &lt;in flight&gt; | reset]]
admin-limits-default = Default limits: { $minute }/min, { $day }/day, { $inflight } in flight.
admin-limits-user = User { $id }: { $minute }/min, { $day }/day, { $inflight } in flight (custom: { $custom }, banned: { $banned }).
    Used: { $used_minute } this minute, { $used_day } today, { $used_inflight } in flight.
admin-maintenance-usage = Usage: /maintenance on|off
admin-maintenance-on = Maintenance mode is ON: new requests get a notice, running jobs finish.
admin-maintenance-off = Maintenance mode is OFF: requests are queued again.
admin-maintenance-is-on = Maintenance mode is on.
admin-maintenance-is-off = Maintenance mode is off.
admin-broadcast-usage = Usage: /broadcast &lt;text&gt;
admin-broadcast-confirm = Send this to every user?
    
    { $text }
admin-btn-broadcast-send = 📣 Send
admin-btn-broadcast-cancel = ✖️ Cancel
admin-broadcast-cancelled = Broadcast cancelled.
admin-broadcast-expired = This broadcast draft has expired; send /broadcast again.
admin-broadcast-started = Broadcast { $id } started to { $total } users. I will report when it is done.
admin-broadcast-report = Broadcast { $id } finished: { $sent } sent, { $blocked } blocked, { $failed } failed (of { $total }).

## Voice messages and translated prompts
voice-listening = 🎧 Listening…
voice-heard =
    I heard: <i>{ $text }</i>
    Shall I draw it?
btn-voice-draw = 🎨 Draw it
btn-voice-edit = ✏️ Edit the text
btn-voice-cancel = ✖️ Cancel
voice-edit =
    Send me the text as it should be. What I heard (tap to copy):
    <code>{ $text }</code>
voice-cancelled = Okay, I won't draw it.
voice-used = Already on its way.
voice-busy = I'm still listening to your previous voice message; one moment, please.
voice-empty = I couldn't hear anything in this recording. Please try again, a little closer to the microphone.
voice-too_long = This recording is too long: I listen to { $limit } seconds at most.
voice-undecodable = I couldn't play this recording. Please send a voice message recorded in Telegram.
voice-expired = This voice message has expired; please send it again.
voice-failed = Sorry, I couldn't make out this recording. Please try again or type the text.
btn-model-read = 🔤 What the model read
read-title = <b>The model read this English translation:</b>
read-prompt = { $text }
read-negative = Negative prompt: { $text }
read-as-written = The model read your prompt as you wrote it.
caption-untranslated = ⚠️ I can't translate from { $languages } yet, so the model read the prompt as written (it understands English best).

## Editing: a region named in words, painted in the Mini App, zoom out, pan (issue 16)
cmd-edit = Change part of a photo
btn-edit = ✏️ Edit a photo
mode-edit = Edit
mode-zoom_out = Zoom out
mode-pan = Pan
edit-ask-photo = Send me the photo to edit, with a caption that says what to change and into what, like “the sky → a stormy sky with lightning”.
edit-ask-photo-after-text = Now send me the photo to change.
edit-ask-text = What should I change, and into what? Write it like “the sky → a stormy sky with lightning”.
edit-ask-words = What should I change in this picture, and into what? Write it like “the sky → a stormy sky with lightning”.
edit-format = Please write what to change, an arrow, and what it becomes, like “the cat → a tiger”.
edit-region-too-long = Name what to change in a few words (up to 200 characters), like “the sky”.
failed-region_not_found = I couldn't find what you asked to change in the picture. Try naming it differently, like "the sky" or "the cat".
failed-style_unavailable = A LoRA style of this request is no longer on the server. Pick your styles again in /settings and send the request again.
btn-edit-words = ✏️ Edit
btn-edit-paint = 🖌 Paint
btn-edit-menu = ✏️
btn-zoom-out-1_5 = 🔎 Zoom out 1.5×
btn-zoom-out-2 = 🔎 Zoom out 2×
btn-pan-left = ⬅️
btn-pan-right = ➡️
btn-pan-up = ⬆️
btn-pan-down = ⬇️
edit-menu = Picture { $n }: what would you like to do with it?
## The Mini App's page (brush editor)
webapp-title = Paint what to change
webapp-hint = Paint over the part to repaint, then say what it should become.
webapp-brush = Brush
webapp-undo = Undo
webapp-clear = Clear
webapp-prompt = What should it become?
webapp-submit = Repaint
webapp-sent = Sent! Your picture is in the queue; watch the chat.
webapp-need-mask = Paint over the part to change first.
webapp-need-prompt = Say what the painted part should become.
webapp-expired = This editor has expired. Open it again from the button under the picture.
webapp-forbidden = This picture belongs to someone else.
webapp-gone = This picture is no longer available; please make a new one.
webapp-failed = Something went wrong. Please try again.
webapp-refused = I can't take this one right now; the chat says why.
edit-not-photo = Only pictures can be edited, not stickers.

## Animation (/animate)
cmd-animate = Animate a prompt: a short camera flight
btn-animate = 🎞 Animation
mode-animate = Animation
animate-ask-prompt =
    What should the animation show? Send a description, or several with the second each starts at:
    0: a quiet forest | 3: the forest on fire
animate-ask-camera = How should the camera move?
animate-ask-duration = How long should it be?
animate-camera-zoom_in = 🔍 Zoom in
animate-camera-zoom_out = 🔭 Zoom out
animate-camera-pan_left = ⬅️ Pan left
animate-camera-pan_right = ➡️ Pan right
animate-camera-spin = 🌀 Spin
animate-camera-flight_3d = 🚀 3D flight
animate-camera-custom = Custom camera
animate-seconds = { $seconds } s
animate-expired = This animation request has expired. Send /animate again.
animate-bad-no-prompt = The animation needs a prompt.
animate-bad-too-many = An animation takes at most { $limit } prompts.
animate-bad-empty-part = There is an empty prompt between two “|”. Write “second: prompt” on each side, e.g. <code>0: a quiet forest | 3: the forest on fire</code>
animate-bad-no-second = “{ $part }” has no second. Write each prompt as “second: prompt”, e.g. <code>0: a quiet forest | 3: the forest on fire</code>
animate-bad-empty-prompt = The prompt at { $second } s is empty.
animate-bad-order = The prompt at { $second } s comes after the one at { $previous } s: give the seconds in order.
animate-bad-first-not-zero = The first prompt starts at { $second } s; it must start at 0.
animate-bad-after-end = The prompt at { $second } s starts after the { $seconds } s animation ends. Pick a longer one or an earlier second.
animate-bad-schedule = I could not read this animation's settings.
status-frame = Animating… frame { $step }/{ $total }
animation-caption-line = 🎞 { $camera } · { $seconds } s · { $frames } frames at { $fps } fps
btn-animation-file = 📎 As a file
quota-per-day-weighted = An animation this long counts as { $weight } requests, more than are left of today's { $limit }. Try a shorter one, or again after { $time } UTC.

## Video (/video)
cmd-video = A video of a prompt (Kandinsky 5.0)
btn-video = 🎬 Video
mode-video = Video
video-ask-prompt = What should the video show? Describe the scene and what happens in it, in English or Russian.
video-caption-line = 🎬 { $seconds } s
status-video = Filming… step { $step }/{ $total }
caption-native = 🗣 { $model } reads { $languages } itself: it got your prompt as written.
mode-image2video = Moving picture
btn-move = 🎬 Make it move
btn-move-start = ▶️ Start
move-ask-prompt = 🎬 What should happen in the video? Describe the motion in words, or tap “▶️ Start” to bring the picture to life with its own prompt.
move-expired = This “Make it move” has expired. Tap “🎬 Make it move” under the picture again.
video-ask-length = How long should the video be? A second counts as one request of your day.
video-seconds = { $seconds } s
video-expired = This video request has expired. Send /video again.
