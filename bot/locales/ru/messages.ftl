## Команды (setMyCommands и /help)
cmd-start = Начать и показать меню
cmd-help = Что умеет бот
cmd-imagine = Картинка по тексту
cmd-mix = Смешать две картинки
cmd-blend = Смешать картинку и текст
cmd-variations = Вариации фото
cmd-sticker = Сделать стикер
cmd-depth = Сохранить формы, сменить вид
cmd-settings = Стиль, пропорции, язык…
cmd-model = Kandinsky 2.2 или 3.0
cmd-cancel = Выйти из диалога или отменить задания
cmd-packs = Ваши стикерпаки

start-greeting =
    Привет, { $name }! Я рисую картинки с помощью Kandinsky 2.2.
    Пришлите мне текст, и я превращу его в картинку, или выберите режим ниже.
help-text =
    <b>Что я умею</b>
    /imagine — картинка по тексту (или просто пришлите текст или голосовое сообщение)
    /mix — смешать две картинки (две фотографии, можно альбомом)
    /blend — смешать картинку и текст (фото с подписью тоже подойдёт)
    /variations — вариации фотографии
    /sticker — стикер с прозрачным фоном
    /packs — ваши стикерпаки: ссылки, новый пак, название, удаление стикера
    /depth — сохранить формы фотографии и сменить её вид
    /animate — короткая анимация по промпту: движение камеры, несколько промптов по секундам
    /video — пятисекундное видео по промпту (Kandinsky 5.0 Video; по-русски или по-английски)
    /edit — изменить часть фотографии: что поменять и на что (или закрасить кистью под результатом)
    /settings — стиль, пропорции, число картинок, негативный промпт, язык
    /model — какая модель рисует картинки: Kandinsky 2.2, Kandinsky 3.0, SDXL или Kandinsky 5.0 Image
    /cancel — выйти из диалога или отменить задания в очереди
    /start — начать заново и показать меню
    /help — это сообщение

## Кнопки меню
btn-imagine = 🎨 Картинка по тексту
btn-mix = 🔀 Смешать две картинки
btn-blend = 🖼 Картинка + текст
btn-variations = 🔁 Вариации
btn-sticker = 🏷 Стикер
btn-depth = 🗿 Сохранить глубину
btn-settings = ⚙️ Настройки
btn-cancel = ✖️ Отмена

## Диалоги
imagine-ask-prompt = Что нарисовать? Пришлите описание.
sticker-ask-prompt = Что должно быть на стикере? Пришлите описание.
mix-ask-photo = Пришлите две фотографии для смешивания (по одной или альбомом).
mix-ask-next-photo = Есть. Теперь пришлите вторую фотографию.
blend-ask-photo = Пришлите фотографию (текст можно добавить подписью).
blend-ask-text = Теперь текст: что подмешать к этой фотографии?
blend-ask-photo-after-text = Теперь пришлите фотографию, которую смешать с этим текстом.
variations-ask-photo = Пришлите фотографию, и я нарисую её вариации.
depth-ask-photo = Пришлите фотографию; я сохраню её формы (новый вид можно указать подписью).
depth-ask-photo-after-text = { depth-ask-photo }
depth-ask-text = Теперь текст: как должна выглядеть фотография?
weights-hint = Веса: { $first }% / { $second }%. Их можно поменять кнопками.
weights-set = Веса: { $first }% / { $second }%.
need-photo = Здесь нужна фотография (или файл с картинкой). /cancel — выйти.
need-text = Здесь нужен текст. /cancel — выйти.
photo-outside-dialog = Что сделать с этой фотографией? Сначала выберите режим:
unknown-command = Такой команды я не знаю. /help покажет, что я умею, или выберите режим:
dialog-cancelled = Отменено. Пришлите текст или выберите режим.
nothing-to-cancel = Отменять нечего.
jobs-cancelled = { $count ->
    [one] Отменено { $count } задание.
    [few] Отменено { $count } задания.
   *[other] Отменено { $count } заданий.
}

## Очередь и прогресс
queued = Ваш запрос в очереди, место { $position }.
queued-eta = Ваш запрос в очереди, место { $position } (примерно { $eta } с).
queued-now = Ваш запрос уже рисуется.
queued-no-worker = Сейчас не работает ни один сервер с { $model }: запрос ждёт и начнётся, как только сервер появится.
status-progress = Рисую… { $stage }: { $step }/{ $total }
status-waiting = Жду своей очереди…
btn-cancel-job = ✖️ Отменить
job-cancel-stopping = Останавливаю задание…
job-cancel-removed = Убрано из очереди.
job-cancel-not-found = Это задание больше не известно.
job-already-finished = Это задание уже закончено.
not-yours = Эта кнопка относится к чужому запросу.
job-cancelled = Запрос отменён.

## Результаты
result-caption =
    <b>{ $mode }</b>{ $prompt }
    Сид: <code>{ $seed }</code> · { $style } · { $aspect } ({ $width }×{ $height })
result-buttons = Кнопки для каждой картинки, по её номеру:
result-model = Модель: { $model }
result-prompt-cut = ✂️ Запрос длиннее, чем читает { $model } ({ $tokens } токенов): конец отброшен.
status-done = Готово.
btn-again = 🔄 Ещё раз
btn-variations-of = 🔁 Вариации
btn-same-seed = 🎯 Тот же сид
btn-file = 📎 Полный размер
btn-add-to-pack = ➕ В мой набор
result-expired = Срок хранения результата истёк; сделайте новый.
input-expired = Исходные данные этого результата устарели; начните заново.

## Названия режимов
mode-text2image = Картинка по тексту
mode-mix = Смешивание
mode-blend = Картинка + текст
mode-variations = Вариации
mode-sticker = Стикер
mode-depth = Сохранение глубины
mode-inpaint = Перерисовка области
mode-outpaint = Дорисовка краёв

## Ошибки
failed-bad_spec = Извините, этот запрос нельзя выполнить.
failed-input_expired = Ваша фотография устарела, пока ждала очереди. Пришлите её ещё раз.
failed-bad_input = Извините, не удалось прочитать присланную картинку.
failed-timeout = Извините, рисование заняло слишком много времени и было остановлено. Попробуйте ещё раз.
failed-engine_error = Извините, при рисовании что-то пошло не так. Попробуйте ещё раз.
failed-worker_lost = Извините, рисующая машина остановилась. Попробуйте ещё раз.
error-generic = Извините, что-то пошло не так. Попробуйте ещё раз.

## Проверка входных данных
input-too-large = Файл слишком большой: предел { $limit_mb } МБ.
input-not-image = Это не похоже на картинку. Пришлите фотографию или файл JPEG/PNG/WEBP.
input-unsupported-format = Картинки в формате { $format } не поддерживаются. Пришлите JPEG, PNG или WEBP.
input-too-many-pixels = В этой картинке слишком много пикселей (предел { $limit_mp } мегапикселей).
input-animated = Анимированные картинки не поддерживаются. Пришлите обычную картинку.
input-corrupt = Похоже, картинка повреждена. Пришлите другую.
input-download-failed = Не удалось скачать файл. Пришлите его ещё раз.
prompt-empty = Описание пустое. Напишите, что нарисовать.
prompt-too-long = Описание слишком длинное: { $length } символов, предел { $limit }.

## Настройки
settings-title =
    <b>Настройки</b>
    Стиль: { $style }
    Пропорции: { $aspect }
    Картинок за запрос: { $count }
    Негативный промпт: { $negative }
    Язык: { $language }
settings-none = —
settings-btn-style = Стиль
settings-btn-aspect = Пропорции
settings-btn-count = Картинок
settings-btn-negative = Негативный промпт
settings-btn-language = Язык
settings-btn-close = Готово
settings-btn-back = « Назад
settings-btn-negative-clear = Очистить негативный промпт
settings-btn-model = Модель
settings-model = Модель: { $model }
settings-btn-loras = 🎨 LoRA-стили
settings-loras = LoRA-стили: { $styles }
settings-pick-loras = LoRA-стили для { $model }: нажмите на стиль, чтобы включить или выключить его (не больше { $limit } сразу); − и + меняют его вес.
settings-loras-none = Для { $model } на этом боте пока нет LoRA-стилей (их добавляет администратор).
settings-loras-too-many = Не больше { $limit } LoRA-стилей сразу. Сначала выключите один.
caption-loras = 🎨 LoRA: { $styles }
model-current = <b>Модель</b>: { $model }
model-lacks = { $model } не умеет: { $modes }.
model-pick = Выберите модель, которая рисует ваши запросы:
model-saved = Выбрана { $model }
model-mode-refused = { $model } не умеет «{ $mode }» — умеет { $other }. Выбранная модель останется прежней; нарисовать только этот запрос в { $other }?
weighting-unbalanced = В весах запроса не сходятся скобки ({ $detail }). Пишите так: <code>(red car:1.4)</code> и закрывайте каждую скобку.
weighting-weight = Вес в запросе вне допустимого ({ $detail }). Веса — от 0 до 2: <code>(fog:0.6)</code>, <code>(red car:1.4)</code>, <code>word++</code>.
btn-switch-once = ▶️ Нарисовать этот в { $other }
switch-expired = Предложение устарело; пришлите запрос ещё раз.
switch-running = Рисую в { $model }
settings-pick-style = Выберите стиль:
settings-pick-aspect = Выберите пропорции:
settings-pick-count = Сколько картинок за запрос?
settings-pick-language = Выберите язык:
settings-ask-negative = Пришлите, чего НЕ должно быть на картинках (или очистите кнопкой).
settings-negative-saved = Негативный промпт сохранён.
settings-saved = Сохранено.
settings-closed = Настройки сохранены.
style-none = Без стиля
style-artstation = Artstation
style-4k = 4k
style-anime = Аниме
language-auto = как в Telegram
language-en = English
language-ru = Русский

## Квоты, баны, техработы (issue 5)
quota-banned = Вы не можете пользоваться этим ботом.
quota-maintenance = 🛠 Сейчас идут технические работы, новые запросы не принимаются. Уже запущенные задания будут доделаны. Попробуйте чуть позже.
quota-per-minute = ⏳ Слишком много запросов: не больше { $limit } в минуту. Следующий свободный слот в { $time } UTC (через { $seconds } с).
quota-per-day = ⏳ Вы использовали все { $limit } запросов на сегодня. Следующий свободный слот в { $time } UTC.
quota-backlog = 🚦 Очередь к этой модели сейчас переполнена (ждут { $waiting } запросов). Попробуйте через несколько минут — этот запрос не засчитан.
quota-inflight = ⏳ У вас уже { $limit } задания в работе. Отправьте следующий запрос, когда одно из них будет готово.

## Стикерпаки (issue 5)
pack-not-yours = Эта кнопка принадлежит другому пользователю.
pack-result-expired = Этот стикер больше недоступен. Сгенерируйте его заново, чтобы добавить в пак.
pack-pick-emoji = Выберите эмодзи для стикера:
pack-btn-default-emoji = { $emoji } По умолчанию
pack-default-title = Стикеры Kandinsky { $name } { $n }
pack-created = Создан новый пак «{ $title }» с этим стикером: { $link }
    Стикеров: { $count }/{ $limit }, свободно мест: { $left }. Управление паками: /packs
pack-added = Добавлено в «{ $title }»: { $link }
    Стикеров: { $count }/{ $limit }, свободно мест: { $left }.
pack-already-added = Этот стикер уже в «{ $title }»: { $link }
pack-line = { $n }. { $current ->
        [yes] ★{" "}
       *[no] {""}
    }<a href="{ $link }">{ $title }</a> — { $count }/{ $limit }, свободно мест: { $left }
packs-empty = У вас пока нет стикерпаков. Сделайте стикер командой /sticker и нажмите под ним «Добавить в мой пак».
packs-header = <b>Ваши стикерпаки ({ $count })</b> — ★ получает новые стикеры
pack-btn-open = ⚙️ { $n }. { $title }
pack-btn-new = ➕ Начать новый пак
pack-btn-use = ★ Добавлять новые сюда
pack-btn-rename = ✏️ Переименовать
pack-btn-remove = 🗑 Удалить стикер
pack-btn-back = « Назад
pack-next-new = Следующий стикер начнёт новый пак.
pack-now-current = Новые стикеры будут добавляться в «{ $title }».
pack-ask-title = Пришлите новое название для «{ $title }» (1–64 символа).
pack-ask-sticker = Пришлите стикер, который нужно удалить из «{ $title }».
pack-ask-sticker-again = Пришлите, пожалуйста, стикер из этого пака (или /cancel).
pack-renamed = Новое название — «{ $title }»: { $link }
pack-removed = Стикер удалён из «{ $title }»: { $count }/{ $limit }, свободно мест: { $left }.
pack-sticker-not-in-pack = Этот стикер не из этого пака.
pack-sticker-not-found = Этого стикера уже нет в паке.
pack-not-found = Этого пака больше нет в вашем списке. Откройте /packs заново.
pack-gone = Пак «{ $title }» был удалён в Telegram; я убрал его из вашего списка.
pack-full = Пак «{ $title }» заполнен (120 стикеров).
pack-title-invalid = Название должно быть длиной 1–{ $limit } символов. Пришлите другое.
pack-file-rejected = Telegram не принял это изображение как стикер. Попробуйте сгенерировать заново.
pack-busy = Ваш пак сейчас обновляется, попробуйте через минуту.
pack-names-exhausted = Не удалось подобрать свободное имя для нового пака. Попробуйте позже.
pack-start-bot-first = Чтобы создать свой стикерпак, откройте личный чат со мной и нажмите «Старт», затем попробуйте снова.

## Команды администратора (issue 5)
admin-stats-header = <b>Статистика</b>
admin-stats-users = Пользователи: всего { $total }, активны сегодня { $today }
admin-stats-jobs = Задания: сегодня { $today }, всего { $total }; ошибок сегодня { $failed_today }, всего { $failed_total }
admin-stats-queue = Длина очереди: { $depth }
admin-stats-mode = { $mode }: сегодня { $today }, всего { $total }, ошибок { $failed_today }/{ $failed_total }, медиана { $median }, p95 { $p95 }
admin-stats-family = { $model }: { $today } сегодня, { $total } всего, ошибок { $failed_today }/{ $failed_total }
admin-queue-header = <b>Очередь</b>
admin-queue-line = { $queue }: ждут { $waiting }, выполняются { $running }
admin-queue-oldest = Дольше всех ждёт: { $wait }
admin-workers-none = Нет живых воркеров.
admin-workers-header = <b>Воркеры ({ $count })</b>
admin-workers-line = { $name } на { $host } ({ $device }; { $families }): { $state }, задание { $job }, выполнено { $done }, ошибок { $failed }, пульс { $beat } назад
admin-workers-styles = ↳ LoRA-стили: { $styles }; не загружены при старте: { $refused } (причина — в журнале воркера)
admin-btn-refresh = 🔄 Обновить
admin-ban-usage = Использование: /ban &lt;id пользователя&gt;
admin-unban-usage = Использование: /unban &lt;id пользователя&gt;
admin-ban-admin = Администратора нельзя забанить.
admin-banned = Пользователь { $id } забанен.
admin-already-banned = Пользователь { $id } уже был забанен.
admin-unbanned = Пользователь { $id } разбанен.
admin-not-banned = Пользователь { $id } не был забанен.
admin-limits-usage = Использование: /limits [&lt;id&gt; [&lt;в минуту&gt; &lt;в день&gt; &lt;одновременно&gt; | reset]]
admin-limits-default = Лимиты по умолчанию: { $minute }/мин, { $day }/день, { $inflight } одновременно.
admin-limits-user = Пользователь { $id }: { $minute }/мин, { $day }/день, { $inflight } одновременно (свои: { $custom }, бан: { $banned }).
    Использовано: { $used_minute } за минуту, { $used_day } сегодня, { $used_inflight } в работе.
admin-maintenance-usage = Использование: /maintenance on|off
admin-maintenance-on = Режим техработ ВКЛЮЧЁН: новые запросы получают уведомление, запущенные задания доделываются.
admin-maintenance-off = Режим техработ ВЫКЛЮЧЕН: запросы снова ставятся в очередь.
admin-maintenance-is-on = Режим техработ включён.
admin-maintenance-is-off = Режим техработ выключен.
admin-broadcast-usage = Использование: /broadcast &lt;текст&gt;
admin-broadcast-confirm = Отправить это всем пользователям?
    
    { $text }
admin-btn-broadcast-send = 📣 Отправить
admin-btn-broadcast-cancel = ✖️ Отмена
admin-broadcast-cancelled = Рассылка отменена.
admin-broadcast-expired = Черновик рассылки устарел; отправьте /broadcast ещё раз.
admin-broadcast-started = Рассылка { $id } запущена на { $total } пользователей. Сообщу, когда закончу.
admin-broadcast-report = Рассылка { $id } завершена: отправлено { $sent }, заблокировали { $blocked }, ошибок { $failed } (из { $total }).

## Голосовые сообщения и перевод запросов
voice-listening = 🎧 Слушаю…
voice-heard =
    Я услышал: <i>{ $text }</i>
    Нарисовать?
btn-voice-draw = 🎨 Нарисовать
btn-voice-edit = ✏️ Исправить текст
btn-voice-cancel = ✖️ Отмена
voice-edit =
    Пришлите текст, как он должен быть. Что я услышал (нажмите, чтобы скопировать):
    <code>{ $text }</code>
voice-cancelled = Хорошо, не буду рисовать.
voice-used = Уже рисую.
voice-busy = Я ещё слушаю ваше предыдущее голосовое сообщение, подождите немного.
voice-empty = Я ничего не расслышал в этой записи. Попробуйте ещё раз, поближе к микрофону.
voice-too_long = Запись слишком длинная: я слушаю не больше { $limit } секунд.
voice-undecodable = Не получилось воспроизвести эту запись. Пришлите голосовое сообщение, записанное в Telegram.
voice-expired = Это голосовое сообщение устарело, пришлите его ещё раз.
voice-failed = Не удалось разобрать эту запись. Попробуйте ещё раз или напишите текстом.
btn-model-read = 🔤 Что прочла модель
read-title = <b>Модель прочла такой английский перевод:</b>
read-prompt = { $text }
read-negative = Негативный промпт: { $text }
read-as-written = Модель прочла ваш запрос так, как вы его написали.
caption-untranslated = ⚠️ С языка { $languages } я пока не перевожу, поэтому модель прочла запрос как есть (лучше всего она понимает английский).

## Редактирование: область словами, кисть в мини-приложении, отдаление, сдвиг кадра (issue 16)
cmd-edit = Изменить часть фотографии
btn-edit = ✏️ Изменить фото
mode-edit = Правка
mode-zoom_out = Отдаление
mode-pan = Сдвиг кадра
edit-ask-photo = Пришлите фотографию с подписью, что поменять и на что, например «небо → грозовое небо с молниями».
edit-ask-photo-after-text = Теперь пришлите фотографию, которую изменить.
edit-ask-text = Что поменять и на что? Напишите так: «небо → грозовое небо с молниями».
edit-ask-words = Что поменять на этой картинке и на что? Напишите так: «небо → грозовое небо с молниями».
edit-format = Напишите, что поменять, стрелку и во что это превратить, например «кот → тигр».
edit-region-too-long = Назовите, что поменять, в нескольких словах (до 200 символов), например «небо».
failed-region_not_found = Не нашёл на картинке то, что вы просили изменить. Попробуйте назвать иначе, например «небо» или «кот».
failed-style_unavailable = Одного из LoRA-стилей этого запроса больше нет на сервере. Выберите стили заново в /settings и отправьте запрос ещё раз.
btn-edit-words = ✏️ Изменить
btn-edit-paint = 🖌 Кистью
btn-edit-menu = ✏️
btn-zoom-out-1_5 = 🔎 Отдалить 1.5×
btn-zoom-out-2 = 🔎 Отдалить 2×
btn-pan-left = ⬅️
btn-pan-right = ➡️
btn-pan-up = ⬆️
btn-pan-down = ⬇️
edit-menu = Картинка { $n }: что с ней сделать?
## Страница мини-приложения (кисть)
webapp-title = Закрасьте, что поменять
webapp-hint = Закрасьте часть, которую перерисовать, и напишите, во что её превратить.
webapp-brush = Кисть
webapp-undo = Отменить
webapp-clear = Очистить
webapp-prompt = Во что превратить?
webapp-submit = Перерисовать
webapp-sent = Готово! Картинка в очереди, смотрите чат.
webapp-need-mask = Сначала закрасьте часть, которую поменять.
webapp-need-prompt = Напишите, во что превратить закрашенное.
webapp-expired = Редактор устарел. Откройте его снова кнопкой под картинкой.
webapp-forbidden = Эта картинка принадлежит другому пользователю.
webapp-gone = Эта картинка больше недоступна; сделайте новую.
webapp-failed = Что-то пошло не так. Попробуйте ещё раз.
webapp-refused = Сейчас не могу это взять; причина — в чате.
edit-not-photo = Изменять можно только картинки, не стикеры.

## Анимация (/animate)
cmd-animate = Оживить промпт: короткий пролёт камеры
btn-animate = 🎞 Анимация
mode-animate = Анимация
animate-ask-prompt =
    Что показать в анимации? Пришлите описание или несколько, каждое с секундой начала:
    0: тихий лес | 3: лес в огне
animate-ask-camera = Как двигаться камере?
animate-ask-duration = Какой длины?
animate-camera-zoom_in = 🔍 Приблизить
animate-camera-zoom_out = 🔭 Отдалить
animate-camera-pan_left = ⬅️ Влево
animate-camera-pan_right = ➡️ Вправо
animate-camera-spin = 🌀 Вращение
animate-camera-flight_3d = 🚀 3D-полёт
animate-camera-custom = Своя камера
animate-seconds = { $seconds } с
animate-expired = Этот запрос анимации устарел. Пришлите /animate ещё раз.
animate-bad-no-prompt = Для анимации нужен промпт.
animate-bad-too-many = В анимации не больше { $limit } промптов.
animate-bad-empty-part = Между двумя «|» пустой промпт. Пишите «секунда: промпт» с каждой стороны, например <code>0: тихий лес | 3: лес в огне</code>
animate-bad-no-second = У «{ $part }» нет секунды. Пишите каждый промпт как «секунда: промпт», например <code>0: тихий лес | 3: лес в огне</code>
animate-bad-empty-prompt = Промпт на { $second } с пустой.
animate-bad-order = Промпт на { $second } с идёт после промпта на { $previous } с: укажите секунды по порядку.
animate-bad-first-not-zero = Первый промпт начинается на { $second } с, а должен — на 0.
animate-bad-after-end = Промпт на { $second } с начинается после конца анимации длиной { $seconds } с. Выберите длиннее или секунду раньше.
animate-bad-schedule = Не получилось прочитать настройки этой анимации.
status-frame = Оживляю… кадр { $step }/{ $total }
animation-caption-line = 🎞 { $camera } · { $seconds } с · { $frames } кадров, { $fps } к/с
btn-animation-file = 📎 Файлом
quota-per-day-weighted = Анимация такой длины считается за { $weight } запросов — больше, чем осталось из { $limit } на сегодня. Попробуйте покороче или снова после { $time } UTC.

## Видео (/video)
cmd-video = Видео по промпту (Kandinsky 5.0)
btn-video = 🎬 Видео
mode-video = Видео
video-ask-prompt = Что показать в видео? Опишите сцену и что в ней происходит — по-русски или по-английски.
video-caption-line = 🎬 { $seconds } с
status-video = Снимаю… шаг { $step }/{ $total }
caption-native = 🗣 { $model } сам понимает язык { $languages }: промпт ушёл ему как есть, без перевода.
mode-image2video = Ожившая картинка
btn-move = 🎬 Оживить
btn-move-start = ▶️ Начать
move-ask-prompt = 🎬 Что должно происходить в видео? Опишите движение словами или нажмите «▶️ Начать» — картинка оживёт по своему промпту.
move-expired = Это «Оживить» устарело. Нажмите «🎬 Оживить» под картинкой ещё раз.
video-ask-length = Какой длины видео? Каждая секунда считается одним запросом дня.
video-seconds = { $seconds } с
video-expired = Этот запрос видео устарел. Пришлите /video ещё раз.
