-- A database as the e2rnas-sweeps store of commit 0f55978 wrote it: the last store before the
-- web service (sweeps without job_id, run_dir, progress and message). Upgraded by
-- tests/service/results/test_migrations.py. The pg_dump --inserts of its PostgreSQL database,
-- written by tests/service/results/data/make_legacy_dumps.py pre-web-service (its docstring
-- says how to write it again); do not edit by hand.
CREATE TABLE public.sweeps (
    sweep_id character varying(128) NOT NULL,
    name character varying(256) NOT NULL,
    status character varying(32) NOT NULL,
    spec json NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
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

INSERT INTO public.sweeps (sweep_id, name, status, spec, created_at, updated_at) VALUES ('grid-9a0f3b7c', 'grid', 'completed', '{"name": "grid", "preset": "tiny", "grid": {"L": [1.0]}, "seeds": [0, 1], "evaluation": "retrain"}', '2026-11-20 09:15:30+00', '2026-11-20 09:52:30+00');

INSERT INTO public.trials (sweep_id, trial_id, swept, status, val_loss, ood_loss, adv_loss, nop_loss, flops_loss, mgda_weights, test_error, params_m, flops_m, pgd_acc, ood_aupr, latency_ms, evaluation, genotype, genotype_hash, search_seconds, eval_seconds, device, versions) VALUES ('grid-9a0f3b7c', '0000', '{"L": 1.0, "seed": 0}', 'completed', 0.6931471805599453, 0.25, 1.5, 0.125, 0.0625, '[0.4, 0.3, 0.1, 0.1, 0.1]', 2.76, 3.349342, 528.1, 38.25, 88, 5, 'retrain', '{"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]], "normal_concat": [2, 3, 4, 5], "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1], ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]], "reduce_concat": [2, 3, 4, 5]}', 'be4a32607156494b', 123.456789, 3600, 'cpu', '{"e2rnas-sweeps": "0.1.0", "ray": "2.60.0", "torch": "2.14.1", "torchvision": "0.29.1"}');
INSERT INTO public.trials (sweep_id, trial_id, swept, status, val_loss, ood_loss, adv_loss, nop_loss, flops_loss, mgda_weights, test_error, params_m, flops_m, pgd_acc, ood_aupr, latency_ms, evaluation, genotype, genotype_hash, search_seconds, eval_seconds, device, versions) VALUES ('grid-9a0f3b7c', '0001', '{"L": 1.0, "seed": 1}', 'failed', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'none', NULL, NULL, NULL, NULL, NULL, '{"e2rnas-sweeps": "0.1.0", "ray": "2.60.0", "torch": "2.14.1", "torchvision": "0.29.1"}');

ALTER TABLE ONLY public.sweeps
    ADD CONSTRAINT sweeps_pkey PRIMARY KEY (sweep_id);

ALTER TABLE ONLY public.trials
    ADD CONSTRAINT trials_pkey PRIMARY KEY (sweep_id, trial_id);

ALTER TABLE ONLY public.trials
    ADD CONSTRAINT trials_sweep_id_fkey FOREIGN KEY (sweep_id) REFERENCES public.sweeps(sweep_id) ON DELETE CASCADE;
