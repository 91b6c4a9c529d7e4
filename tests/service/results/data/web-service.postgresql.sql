-- A database as the e2rnas-sweeps store of commit f553fe5 wrote it: the last store before
-- Alembic (tables from create_all, the web service's columns of sweeps added by hand). Upgraded
-- by tests/service/results/test_migrations.py. The pg_dump --inserts of its PostgreSQL
-- database, written by tests/service/results/data/make_legacy_dumps.py web-service (its
-- docstring says how to write it again); do not edit by hand.
CREATE TABLE public.sweeps (
    sweep_id character varying(128) NOT NULL,
    name character varying(256) NOT NULL,
    status character varying(32) NOT NULL,
    spec json NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    job_id character varying(128),
    run_dir text,
    progress json,
    message text
);

CREATE TABLE public.trials (
    sweep_id character varying(128) NOT NULL,
    trial_id character varying(256) NOT NULL,
    swept json NOT NULL,
    status text NOT NULL,
    val_loss double precision,
    ood_loss double precision,
    adv_loss double precision,
    nop_loss double precision,
    flops_loss double precision,
    mgda_weights text,
    test_error double precision,
    params_m double precision,
    flops_m double precision,
    pgd_acc double precision,
    ood_aupr double precision,
    latency_ms double precision,
    evaluation text,
    genotype text,
    genotype_hash text,
    search_seconds double precision,
    eval_seconds double precision,
    device text,
    versions text
);

INSERT INTO public.sweeps (sweep_id, name, status, spec, created_at, updated_at, job_id, run_dir, progress, message) VALUES ('quickstart-5d41402a', 'quickstart', 'cancelled', '{"name": "quickstart", "preset": "tiny", "grid": {"L": [1.0, 2.5], "F": [100.0, 400.0]}, "seeds": [0], "evaluation": "proxy"}', '2026-11-20 09:15:30+00', '2026-11-20 09:48:30+00', 'raysubmit_8kq3Z1vN2cXpTt5M', '/srv/e2rnas/storage/runs/quickstart-5d41402a', '{"total": 3, "pending": 0, "running": 0, "done": 2, "failed": 1}', 'cancelled by request');

INSERT INTO public.trials (sweep_id, trial_id, swept, status, val_loss, ood_loss, adv_loss, nop_loss, flops_loss, mgda_weights, test_error, params_m, flops_m, pgd_acc, ood_aupr, latency_ms, evaluation, genotype, genotype_hash, search_seconds, eval_seconds, device, versions) VALUES ('quickstart-5d41402a', '0000', '{"F": 100.0, "L": 1.0, "no_ood": false, "seed": 0}', 'completed', 0.6931471805599453, 0.25, 1.5, 0.125, 0.0625, '[0.4, 0.3, 0.1, 0.1, 0.1]', 12.345678901234567, 3.349342, 528.1, 40, 90.5, 4.5, 'proxy', '{"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]], "normal_concat": [2, 3, 4, 5], "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1], ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]], "reduce_concat": [2, 3, 4, 5]}', 'be4a32607156494b', 123.456789, 45, 'cpu', '{"e2rnas-sweeps": "0.1.0", "ray": "2.60.0", "torch": "2.14.1", "torchvision": "0.29.1"}');
INSERT INTO public.trials (sweep_id, trial_id, swept, status, val_loss, ood_loss, adv_loss, nop_loss, flops_loss, mgda_weights, test_error, params_m, flops_m, pgd_acc, ood_aupr, latency_ms, evaluation, genotype, genotype_hash, search_seconds, eval_seconds, device, versions) VALUES ('quickstart-5d41402a', '0001', '{"F": 100.0, "L": 2.5, "no_ood": false, "seed": 0}', 'failed', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'none', NULL, NULL, NULL, NULL, NULL, '{"e2rnas-sweeps": "0.1.0", "ray": "2.60.0", "torch": "2.14.1", "torchvision": "0.29.1"}');
INSERT INTO public.trials (sweep_id, trial_id, swept, status, val_loss, ood_loss, adv_loss, nop_loss, flops_loss, mgda_weights, test_error, params_m, flops_m, pgd_acc, ood_aupr, latency_ms, evaluation, genotype, genotype_hash, search_seconds, eval_seconds, device, versions) VALUES ('quickstart-5d41402a', '0002', '{"F": 400.0, "L": 1.0, "backbone": "darts", "no_ood": true, "seed": 0}', 'completed', 0.30000000000000004, 0.25, 1.5, 0.125, 0.0625, '[0.4, 0.3, 0.1, 0.1, 0.1]', NULL, 3.349342, 528.1, NULL, NULL, NULL, 'none', '{"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]], "normal_concat": [2, 3, 4, 5], "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1], ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]], "reduce_concat": [2, 3, 4, 5]}', 'be4a32607156494b', 123.456789, NULL, 'cpu', '{"e2rnas-sweeps": "0.1.0", "ray": "2.60.0", "torch": "2.14.1", "torchvision": "0.29.1"}');

ALTER TABLE ONLY public.sweeps
    ADD CONSTRAINT sweeps_pkey PRIMARY KEY (sweep_id);

ALTER TABLE ONLY public.trials
    ADD CONSTRAINT trials_pkey PRIMARY KEY (sweep_id, trial_id);

ALTER TABLE ONLY public.trials
    ADD CONSTRAINT trials_sweep_id_fkey FOREIGN KEY (sweep_id) REFERENCES public.sweeps(sweep_id) ON DELETE CASCADE;
