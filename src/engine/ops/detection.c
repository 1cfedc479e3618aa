/* detection.c - NonMaxSuppression, the post-processing step of object
 * detectors: per batch and class, greedy selection by descending score,
 * dropping boxes whose IoU with a selected box exceeds the threshold. */
#include <stdlib.h>
#include <string.h>

#include "engine/ops/ops.h"

typedef struct nms_box {
    float y1, x1, y2, x2, area;
} nms_box;

typedef struct nms_cand {
    float score;
    int64_t index;
} nms_cand;

/* Descending score; equal scores keep the lower box index first. */
static int cmp_cand(const void *a, const void *b)
{
    const nms_cand *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static nms_box make_box(const float *c, bool is_center)
{
    nms_box b;
    if (is_center) {
        float xc = c[0], yc = c[1], w = c[2], h = c[3];
        b.x1 = xc - w / 2;
        b.x2 = xc + w / 2;
        b.y1 = yc - h / 2;
        b.y2 = yc + h / 2;
    } else { /* any diagonal pair of corners */
        b.y1 = c[0] < c[2] ? c[0] : c[2];
        b.y2 = c[0] < c[2] ? c[2] : c[0];
        b.x1 = c[1] < c[3] ? c[1] : c[3];
        b.x2 = c[1] < c[3] ? c[3] : c[1];
    }
    b.area = (b.y2 - b.y1) * (b.x2 - b.x1);
    return b;
}

static float iou(const nms_box *a, const nms_box *b)
{
    float y1 = a->y1 > b->y1 ? a->y1 : b->y1, x1 = a->x1 > b->x1 ? a->x1 : b->x1;
    float y2 = a->y2 < b->y2 ? a->y2 : b->y2, x2 = a->x2 < b->x2 ? a->x2 : b->x2;
    if (y2 <= y1 || x2 <= x1)
        return 0;
    float inter = (y2 - y1) * (x2 - x1), uni = a->area + b->area - inter;
    return uni > 0 ? inter / uni : 0;
}

typedef struct nms_result {
    int64_t *triples; /* [n, 3] */
    size_t n;
} nms_result;

static st_status nms_infer(eng_kctx *k)
{
    const eng_tensor *boxes = k->in[0], *scores = k->n_in > 1 ? k->in[1] : NULL;
    if (!boxes || !scores || boxes->dtype != ST_DT_FLOAT32 || scores->dtype != ST_DT_FLOAT32)
        return eng_fail(k, ST_ETYPE, "boxes and scores must be float32");
    if (boxes->rank != 3 || boxes->shape[2] != 4 || scores->rank != 3 || scores->shape[0] != boxes->shape[0] ||
        scores->shape[2] != boxes->shape[1])
        return eng_fail(k, ST_ESHAPE, "boxes must be [batch, boxes, 4] and scores [batch, classes, boxes]");
    int64_t max_out = k->n_in > 2 && k->in[2] && k->in[2]->count ? eng_int_at(k->in[2], 0) : 0;
    float iou_thr = k->n_in > 3 && k->in[3] && k->in[3]->count ? (float)eng_num_at(k->in[3], 0) : 0.0f;
    bool has_score_thr = k->n_in > 4 && k->in[4] && k->in[4]->count;
    float score_thr = has_score_thr ? (float)eng_num_at(k->in[4], 0) : 0.0f;
    bool is_center = eng_attr_int(k->node, "center_point_box", 0) == 1;
    size_t n_batch = (size_t)boxes->shape[0], n_boxes = (size_t)boxes->shape[1], n_class = (size_t)scores->shape[1];
    if (max_out < 0)
        max_out = 0;
    size_t per_class = (size_t)max_out < n_boxes ? (size_t)max_out : n_boxes;
    size_t cap = n_batch * n_class * per_class;
    nms_result *r = st_arena_alloc(k->scratch, sizeof *r, 8);
    nms_cand *cand = st_arena_alloc(k->scratch, (n_boxes + 1) * sizeof *cand, 8);
    nms_box *sel = st_arena_alloc(k->scratch, (per_class + 1) * sizeof *sel, 8);
    if (!r || !cand || !sel || !(r->triples = st_arena_alloc(k->scratch, (cap * 3 + 1) * sizeof(int64_t), 8)))
        return eng_fail(k, ST_ENOMEM, "out of memory");
    r->n = 0;
    const float *bx = boxes->data, *sc = scores->data;
    for (size_t b = 0; b < n_batch && per_class; b++) {
        for (size_t c = 0; c < n_class; c++) {
            const float *s = sc + (b * n_class + c) * n_boxes;
            size_t n_cand = 0;
            for (size_t i = 0; i < n_boxes; i++)
                if (!has_score_thr || s[i] > score_thr)
                    cand[n_cand++] = (nms_cand){ s[i], (int64_t)i };
            qsort(cand, n_cand, sizeof *cand, cmp_cand);
            size_t n_sel = 0;
            for (size_t i = 0; i < n_cand && n_sel < per_class; i++) {
                nms_box box = make_box(bx + (b * n_boxes + (size_t)cand[i].index) * 4, is_center);
                bool keep = true;
                for (size_t j = 0; j < n_sel && keep; j++)
                    keep = iou(&box, &sel[j]) <= iou_thr;
                if (!keep)
                    continue;
                sel[n_sel++] = box;
                int64_t *t = r->triples + r->n++ * 3;
                t[0] = (int64_t)b;
                t[1] = (int64_t)c;
                t[2] = cand[i].index;
            }
        }
    }
    k->stash = r;
    int64_t shape[2] = { (int64_t)r->n, 3 };
    eng_set_shape(k->out[0], ST_DT_INT64, shape, 2);
    return ST_OK;
}

static st_status nms_run(eng_kctx *k)
{
    const nms_result *r = k->stash;
    if (r->n)
        memcpy(k->out[0]->data, r->triples, r->n * 3 * sizeof(int64_t));
    return ST_OK;
}

const eng_op eng_ops_detection[] = {
    { "", "NonMaxSuppression", 10, NULL, nms_infer, nms_run },
    { 0 },
};
