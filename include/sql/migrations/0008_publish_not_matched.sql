-- НаПоправку answers POST doctors with the doctors it could not link to its own doctor
-- profiles (result.not_matched, napopravku/rta-api-service-client,
-- src/DTOs/Doctor/Result/DoctorListUpdateResultDTO.php). Each run records them here, as
-- the service names them; NULL means the run sent no doctors (or the reply did not say).

alter table integration.publish_log add column not_matched_doctors text[];

comment on column integration.publish_log.not_matched_doctors is
    'doctors the aggregator could not link to its own profiles (НаПоправку not_matched); NULL = not reported in this run';
