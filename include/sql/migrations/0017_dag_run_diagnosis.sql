-- What a failed run's error says about the service, in a word the status page can read
-- (issue 4): 'switched_off' when an IDENT partner answered that it switched the
-- integration off on its side. Written by the run listener with the task's error.

alter table integration.dag_runs add column diagnosis text;

comment on column integration.dag_runs.diagnosis is
    'Что ошибка запуска говорит о сервисе: switched_off — партнёр отключил интеграцию у себя.';
