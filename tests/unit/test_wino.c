/* test_wino.c - the Winograd F(2x2, 3x3) convolution (kernels/wino.c):
 * its SIMD transforms and its scalar reference, each against a naive
 * direct convolution written here, on random shapes with every
 * combination of 0/1 pads, odd and even sizes, bias and ReLU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "base/alloc.h"
#include "engine/kernels/kernels.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static size_t rnd_in(size_t lo, size_t hi)
{
    return lo + rnd() % (hi - lo + 1);
}

static void fill(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
}

typedef struct wino_case {
    size_t c_in, c_out, h, w, pt, pl, pb, pr;
    bool relu, has_bias;
} wino_case;

/* y = relu?(bias + conv(x, W)), accumulated in double. */
static void naive(const wino_case *k, const float *x, const float *w, const float *bias, size_t oh, size_t ow,
                  float *y)
{
    for (size_t m = 0; m < k->c_out; m++)
        for (size_t oy = 0; oy < oh; oy++)
            for (size_t ox = 0; ox < ow; ox++) {
                double acc = bias ? bias[m] : 0.0;
                for (size_t c = 0; c < k->c_in; c++)
                    for (size_t a = 0; a < 3; a++)
                        for (size_t b = 0; b < 3; b++) {
                            ptrdiff_t iy = (ptrdiff_t)(oy + a) - (ptrdiff_t)k->pt;
                            ptrdiff_t ix = (ptrdiff_t)(ox + b) - (ptrdiff_t)k->pl;
                            if (iy < 0 || ix < 0 || iy >= (ptrdiff_t)k->h || ix >= (ptrdiff_t)k->w)
                                continue;
                            acc += (double)x[(c * k->h + (size_t)iy) * k->w + (size_t)ix] *
                                   w[((m * k->c_in + c) * 3 + a) * 3 + b];
                        }
                if (k->relu && acc < 0)
                    acc = 0;
                y[(m * oh + oy) * ow + ox] = (float)acc;
            }
}

static void check_case(const wino_case *k)
{
    size_t oh = k->h + k->pt + k->pb - 2, ow = k->w + k->pl + k->pr - 2;
    float *x = malloc(k->c_in * k->h * k->w * sizeof *x + 4);
    float *w = malloc(k->c_out * k->c_in * 9 * sizeof *w);
    float *bias = malloc(k->c_out * sizeof *bias);
    float *want = malloc(k->c_out * oh * ow * sizeof *want);
    float *got = malloc(k->c_out * oh * ow * sizeof *got);
    float *tmp = malloc(k->c_out * k->c_in * sizeof *tmp);
    size_t u_floats = eng_wino_pack_floats(k->c_out, k->c_in);
    size_t s_floats = eng_wino_scratch_floats(k->c_in, k->c_out, oh, ow);
    assert_true(u_floats > 0 && s_floats > 0);
    float *u = st_aligned_alloc(64, u_floats * sizeof *u);
    float *scratch = st_aligned_alloc(64, s_floats * sizeof *scratch);
    assert_true(x && w && bias && want && got && tmp && u && scratch);
    fill(x, k->c_in * k->h * k->w);
    fill(w, k->c_out * k->c_in * 9);
    fill(bias, k->c_out);
    naive(k, x, w, k->has_bias ? bias : NULL, oh, ow, want);
    eng_wino_pack(w, k->c_out, k->c_in, u, tmp);
    eng_wino_conv p = { .x = x, .c_in = k->c_in, .h = k->h, .w = k->w, .pad_top = k->pt, .pad_left = k->pl,
                        .oh = oh, .ow = ow, .c_out = k->c_out, .u = u, .bias = k->has_bias ? bias : NULL,
                        .relu = k->relu, .y = got, .scratch = scratch };
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < k->c_out * oh * ow; i++)
            got[i] = NAN;
        if (pass == 0)
            eng_wino_run_ref(&p);
        else
            eng_wino_run(&p);
        for (size_t i = 0; i < k->c_out * oh * ow; i++) {
            float tol = 2e-6f * (float)(k->c_in * 9) + 1e-5f * fabsf(want[i]);
            if (!(fabsf(got[i] - want[i]) <= tol))
                fail_msg("%s: c_in=%zu c_out=%zu h=%zu w=%zu pads=%zu,%zu,%zu,%zu relu=%d bias=%d: y[%zu] = %.8g, "
                         "want %.8g",
                         pass ? "run" : "ref", k->c_in, k->c_out, k->h, k->w, k->pt, k->pl, k->pb, k->pr, k->relu,
                         k->has_bias, i, (double)got[i], (double)want[i]);
        }
    }
    st_free(u);
    st_free(scratch);
    free(x);
    free(w);
    free(bias);
    free(want);
    free(got);
    free(tmp);
}

/* Shapes of real CNNs ("same" 3x3 convs on 32, 16 and 8 pixel maps). */
static void test_cnn_shapes(void **state)
{
    (void)state;
    static const size_t shapes[][3] = { { 3, 32, 32 }, { 32, 32, 32 }, { 32, 64, 16 }, { 64, 128, 8 }, { 16, 8, 33 } };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        wino_case k = { .c_in = shapes[s][0], .c_out = shapes[s][1], .h = shapes[s][2], .w = shapes[s][2],
                        .pt = 1, .pl = 1, .pb = 1, .pr = 1, .relu = s % 2 == 0, .has_bias = true };
        check_case(&k);
    }
}

/* Random sizes (odd, even, tiny, over a vector of tiles) and pads. */
static void test_random(void **state)
{
    (void)state;
    for (int i = 0; i < 300; i++) {
        wino_case k = { .c_in = rnd_in(1, 20), .c_out = rnd_in(1, 20), .h = rnd_in(1, 40), .w = rnd_in(1, 40),
                        .pt = rnd() % 2, .pl = rnd() % 2, .pb = rnd() % 2, .pr = rnd() % 2, .relu = rnd() % 2,
                        .has_bias = rnd() % 2 };
        if (k.h + k.pt + k.pb < 3 || k.w + k.pl + k.pr < 3)
            continue;
        check_case(&k);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cnn_shapes),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests_name("wino", tests, NULL, NULL);
}
