"""The marketing channels a lead is counted in: the values of the report tables' ``channel``
columns, each with what it means to a marketer (Russian: shown on the report page).

Apart from :mod:`ident_hooks.reports.channels` (the rules that choose one) because the
integrations config checks an instance's ``channel:`` against these codes.
"""

# Channel codes (the values of the `channel` columns) and what they mean, for docs/comments.
CHANNELS: dict[str, str] = {
    "aggregator": "агрегаторы: ПроДокторов, НаПоправку, СберЗдоровье, DocDoc, 32top",
    "paid": "платная реклама: utm_medium cpc, ppc, cpm, cpa, display, retargeting …",
    "social": "соцсети и мессенджеры: ВКонтакте, Одноклассники, Telegram, Дзен, YouTube …",
    "email": "e-mail-рассылки",
    "organic": "поисковики без рекламы: Яндекс, Google, Bing, Поиск Mail.ru …",
    "referral": "переход с другого сайта",
    "other": "есть UTM-метки, но ни одно правило не подошло",
    "direct": "нет ни UTM-меток, ни сайта-источника (набрали адрес, звонок без метки)",
}

# Short names for staff (the report charts' legend, the inbox's calls); CHANNELS says
# what each channel holds.
CHANNEL_LABELS = {
    "aggregator": "Агрегаторы",
    "paid": "Реклама",
    "social": "Соцсети",
    "email": "E-mail",
    "organic": "Поиск",
    "referral": "Другие сайты",
    "other": "Прочие метки",
    "direct": "Прямые",
}
